"""Evaluate one trained model on its scenario's test split (rule evaluate)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from fgbg.evaluate import evaluate  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split  # noqa: E402
from fgbg.tables import versions, write_csv, write_json  # noqa: E402
from fgbg.training import load_trained  # noqa: E402

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)

tick = time.perf_counter()
model, model_config = load_trained(snakemake.input.model)
test = open_split(snakemake.input.test).load()
likelihood = model_config.get("likelihood", "bernoulli")
logging.info("evaluating %s on %d test images", snakemake.input.model, test.sizes["sample"])
tables = evaluate(
    model,
    test,
    threshold=snakemake.params.threshold,
    likelihood=likelihood,
    batch_size=snakemake.params.batch_size,
    seed=snakemake.params.probe_seed,
)
for name in ("cells", "rates", "latent"):
    write_csv(tables[name], snakemake.output[name])
write_json(
    {
        "model": snakemake.input.model,
        "test": snakemake.input.test,
        "n_test": int(test.sizes["sample"]),
        "threshold": snakemake.params.threshold,
        "likelihood": likelihood,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - tick, 3),
        "versions": versions("torch", "scikit-learn"),
    },
    snakemake.output.info,
)
logging.info("done in %.1f s", time.perf_counter() - tick)
