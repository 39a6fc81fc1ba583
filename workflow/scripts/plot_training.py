"""Training curves of one run from its history.csv (rule training_curves)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")


import pandas as pd  # noqa: E402
from fgbg import figures  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402

log_to_file(snakemake.log[0])

run = " / ".join(snakemake.wildcards[k] for k in ("scenario", "model")) + (
    f" / seed {snakemake.wildcards.seed}"
)
history = pd.read_csv(snakemake.input.history)
figures.save(
    figures.training_curves(history, title=f"Training curves, {run} (train solid, test dashed)"),
    snakemake.output.figure,
)
