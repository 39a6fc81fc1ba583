"""Test the thesis's six findings for every method on the per-run tables (rule findings)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402

from fgbg.findings import findings  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.summary import read_runs  # noqa: E402
from fgbg.tables import write_csv  # noqa: E402

log_to_file(snakemake.log[0])

runs = snakemake.params.runs  # (scenario, method, seed) of each input, in input order


def read(paths):
    return read_runs([(*run, path) for run, path in zip(runs, paths, strict=True)])


table = findings(
    read(snakemake.input.rates),
    read(snakemake.input.latent),
    methods=snakemake.params.methods,
    scenarios=snakemake.params.scenarios,
    dual=snakemake.params.dual,
)
write_csv(table, snakemake.output.findings)
for row in table.itertuples():
    logging.info("%s finding %d: %s", row.model, row.finding, row.verdict)
