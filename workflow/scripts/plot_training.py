"""Training curves of every seed of one scenario and model, overlaid, from their history.csv
(rule training_curves)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")


import pandas as pd  # noqa: E402

from fgbg import figures  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402

log_to_file(snakemake.log[0])

seeds = snakemake.params.seeds
history = pd.concat(
    [
        pd.read_csv(path).assign(seed=seed)
        for seed, path in zip(seeds, snakemake.input.histories, strict=True)
    ],
    ignore_index=True,
)
scenario, model = snakemake.wildcards.scenario, snakemake.wildcards.model
n = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
figures.save(
    figures.training_curves(
        history,
        title=f"Training curves, {scenario} / {model}, {n} (training set solid, validation "
        "split dashed)",
    ),
    snakemake.output.figure,
)
