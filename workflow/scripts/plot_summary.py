"""Figures drawn from the summary tables (rules summary_figure, separation_figure,
cells_figure): which one is the rule's `params.figure`."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")


import pandas as pd  # noqa: E402
from fgbg import figures  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402

log_to_file(snakemake.log[0])

draw = getattr(figures, snakemake.params.figure)
figures.save(draw(pd.read_csv(snakemake.input.table)), snakemake.output.figure)
