"""Figures drawn from the summary tables with every run's value beside them (rules
summary_figure, separation_figure, cells_figure): which one is the rule's `params.figure`;
the per-run tables are the rule's other named inputs (rates, separation, cell_rates), in the
order of `params.runs`."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")


import pandas as pd  # noqa: E402

from fgbg import figures  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.summary import read_runs  # noqa: E402

log_to_file(snakemake.log[0])

runs = snakemake.params.runs
tables = {
    name: read_runs([(*run, path) for run, path in zip(runs, paths, strict=True)])
    for name, paths in snakemake.input.items()
    if name != "table"
}
draw = getattr(figures, snakemake.params.figure)
figures.save(
    draw(
        pd.read_csv(snakemake.input.table),
        runs=figures.run_values(**tables),
        references=snakemake.params.references,
    ),
    snakemake.output.figure,
)
