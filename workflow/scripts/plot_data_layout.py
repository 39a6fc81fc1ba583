"""The layout of every scenario: numbered cells and outlined disks (rule data_layout_figure)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402

from fgbg.data_figures import DPI, plot_layout  # noqa: E402
from fgbg.figures import save  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split  # noqa: E402

log_to_file(snakemake.log[0])

stores = dict(zip(snakemake.params.scenarios, snakemake.input.stores, strict=True))
save(
    plot_layout({name: open_split(path) for name, path in stores.items()}),
    snakemake.output.figure,
    dpi=DPI,
)
logging.info("wrote %s", snakemake.output.figure)
