"""Generate one data replicate of a scenario: train, val and test stores and the data card
(rule generate_data)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402
import time  # noqa: E402

from fgbg.datacard import data_card  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split, write_split  # noqa: E402
from fgbg.tables import write_json  # noqa: E402

log_to_file(snakemake.log[0])
log = logging.getLogger("generate_data")

scenario = snakemake.wildcards.scenario
params = snakemake.params
sizes = params.sizes
for split, n in sizes.items():
    started = time.perf_counter()
    path = write_split(
        snakemake.output[split],
        params.generation,
        scenario=scenario,
        split=split,
        seed=params.seed,
        n=n,
        chunk_size=params.chunk_size,
    )
    seconds = time.perf_counter() - started
    log.info(
        "%s %s: %d images in %.1f s (%.0f images/s) -> %s",
        scenario,
        split,
        n,
        seconds,
        n / seconds,
        path,
    )

card = data_card({split: open_split(snakemake.output[split]) for split in sizes}, scenario)
write_json(card, snakemake.output.card)
log.info("data card -> %s", snakemake.output.card)
