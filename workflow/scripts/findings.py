"""Test the thesis's six findings on the summary tables (rule findings)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402

import pandas as pd  # noqa: E402
from fgbg.findings import findings  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.tables import write_csv  # noqa: E402

log_to_file(snakemake.log[0])

table = findings(
    pd.read_csv(snakemake.input.summary),
    pd.read_csv(snakemake.input.latent, dtype={"dim": str}),
    model=snakemake.params.model,
    scenarios=snakemake.params.scenarios,
)
write_csv(table, snakemake.output.findings)
for row in table.itertuples():
    logging.info("finding %d: %s", row.finding, row.verdict)
