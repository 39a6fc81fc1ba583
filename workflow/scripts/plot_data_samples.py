"""Sample images of one scenario (rule data_samples_figure)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402

from fgbg.data_figures import DPI, plot_samples  # noqa: E402
from fgbg.figures import save  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split  # noqa: E402

log_to_file(snakemake.log[0])

ds = open_split(snakemake.input.store)
save(
    plot_samples(ds, snakemake.wildcards.scenario, n=snakemake.params.n),
    snakemake.output.figure,
    dpi=DPI,
)
logging.info("wrote %s", snakemake.output.figure)
