"""Per-cell TPR / FPR over all seeds of one scenario and model (rule cell_map)."""

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
cells = [pd.read_csv(path) for path in snakemake.input.cells]
threshold = snakemake.params.threshold
panels = {"score": per_cell_means(cells, threshold, "score")}
if snakemake.params.dual:
    panels["z2 switched off"] = per_cell_means(cells, threshold, "score_z2_off")
disks = snakemake.params.disks
labels = [f"disk{d} p={disk['probability']:g}" for d, disk in enumerate(disks)]
scenario, model = snakemake.wildcards.scenario, snakemake.wildcards.model
figures.save(
    figures.cell_map(
        test["cell_mask"].values,
        test["disk_mask"].values,
        panels,
        disk_labels=labels,
        title=f"Per-cell rates on the test split, {scenario} / {model}, mean over "
        f"{len(cells)} seed{'s' if len(cells) > 1 else ''} (disks outlined)",
    ),
    snakemake.output.figure,
)
