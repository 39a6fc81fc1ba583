"""TPR, FPR and AUROC per stratum, scenario and model across seeds (rule summary_figure)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402

import pandas as pd  # noqa: E402
from fgbg import figures  # noqa: E402

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO)

figures.save(figures.summary_figure(pd.read_csv(snakemake.input.summary)), snakemake.output.figure)
