"""TPR, FPR and AUROC per stratum, scenario and model across seeds (rule summary_figure)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")


import pandas as pd  # noqa: E402
from fgbg import figures  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402

log_to_file(snakemake.log[0])

figures.save(figures.summary_figure(pd.read_csv(snakemake.input.summary)), snakemake.output.figure)
