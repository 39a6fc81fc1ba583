"""Aggregate every run's evaluation tables across seeds (rule summary)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402

from fgbg import summary  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.tables import write_csv  # noqa: E402

log_to_file(snakemake.log[0])

runs = snakemake.params.runs
scenarios, models = snakemake.params.scenarios, snakemake.params.models


def read(paths):
    return summary.read_runs([(*run, path) for run, path in zip(runs, paths, strict=True)])


inputs = snakemake.input
table = summary.summarise(read(inputs.rates), read(inputs.separation), scenarios, models)
write_csv(table, snakemake.output.summary)
write_csv(summary.wide(table, scenarios), snakemake.output.wide)
write_csv(
    summary.summarise_cells(read(inputs.cell_rates), scenarios, models), snakemake.output.cells
)
write_csv(summary.summarise_latent(read(inputs.latent), scenarios, models), snakemake.output.latent)
logging.info("%d runs -> %d summary rows", len(runs), len(table))
