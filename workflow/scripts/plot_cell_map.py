"""Per-cell TPR / FPR over all seeds of one scenario, one figure per method (rule cell_map:
one job per scenario, so the start-up is paid once)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")


import pandas as pd  # noqa: E402

from fgbg import figures  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split  # noqa: E402
from fgbg.summary import per_cell_means  # noqa: E402

log_to_file(snakemake.log[0])

test = open_split(snakemake.input.test)
params = snakemake.params
scenario = snakemake.wildcards.scenario
disks = params.disks
labels = [f"disk{d} p={disk['probability']:g}" for d, disk in enumerate(disks)]
n = len(params.seeds)
for method, output in zip(params.methods, snakemake.output, strict=True):
    paths = [f"results/eval/{scenario}/{method}/seed{seed}/cells.csv" for seed in params.seeds]
    cells = [pd.read_csv(path) for path in paths]
    panels = {"score": per_cell_means(cells, params.threshold, "score")}
    if method in params.dual:
        panels["z2 switched off"] = per_cell_means(cells, params.threshold, "score_z2_off")
    figures.save(
        figures.cell_map(
            test["cell_mask"].values,
            test["disk_mask"].values,
            panels,
            disk_labels=labels,
            title=f"Per-cell rates on the {params.split} split, {scenario} / {method}, mean over "
            f"{n} seed{'s' if n > 1 else ''} (disks outlined)",
        ),
        output,
    )
