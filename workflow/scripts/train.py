"""Train one (scenario, model, seed) and write model.pt, history.csv, run.json (rule train)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402
from pathlib import Path  # noqa: E402

from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split  # noqa: E402
from fgbg.training import resolve_device, train_starts  # noqa: E402

log_to_file(snakemake.log[0])
log = logging.getLogger("train")
resolve_device(snakemake.params.training["device"])  # before any work: is it available?

out_dir = Path(snakemake.output.model).parent
for name in ("history", "run"):
    assert Path(snakemake.output[name]).parent == out_dir, f"{name} must sit beside model.pt"

images = {split: open_split(snakemake.input[split])["images"].values for split in ("train", "val")}
log.info(
    "%s %s seed %s", snakemake.wildcards.scenario, snakemake.wildcards.model, snakemake.params.seed
)
train_starts(
    images["train"],
    snakemake.params.model,
    snakemake.params.training,
    seed=snakemake.params.seed,
    out_dir=out_dir,
    val_images=images["val"],
    threads=snakemake.threads,
    log=log,
)
