"""Evaluate one method (a trained model or a reference) on its data replicate's test split
(rule evaluate)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from fgbg.evaluate import evaluate, model_outputs  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.novelty import seen_in  # noqa: E402
from fgbg.references import reference_outputs  # noqa: E402
from fgbg.store import open_split  # noqa: E402
from fgbg.tables import versions, write_csv, write_json  # noqa: E402
from fgbg.training import load_trained  # noqa: E402

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)

tick = time.perf_counter()
test = open_split(snakemake.input.test).load()
train_images = open_split(snakemake.input.train)["images"].values
method = snakemake.params.method
if "model" in snakemake.input.keys():
    model, method = load_trained(snakemake.input.model)
    outputs = model_outputs(
        model,
        test["images"].values,
        method.get("likelihood", "bernoulli"),
        snakemake.params.batch_size,
        train_images=train_images,
    )
else:
    outputs = reference_outputs(method, test)
logging.info("evaluating %s on %d test images", method["type"], test.sizes["sample"])
novel = ~seen_in(train_images, test["images"].values)
tables = evaluate(
    outputs, test, snakemake.params.threshold, novel=novel, seed=snakemake.params.probe_seed
)
for name in ("cells", "rates", "cell_rates", "separation", "latent"):
    write_csv(tables[name], snakemake.output[name])
write_json(
    {
        "method": method,
        "model": snakemake.input.get("model"),
        "test": snakemake.input.test,
        "n_test": int(test.sizes["sample"]),
        "novel_test_images": int(novel.sum()),
        "threshold": snakemake.params.threshold,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - tick, 3),
        "versions": versions("torch", "scikit-learn"),
    },
    snakemake.output.info,
)
logging.info("done in %.1f s", time.perf_counter() - tick)
