"""Evaluate every method (trained models and references) of one scenario and data replicate on
its held-out split (rule evaluate): the split is read, and the start-up paid, once."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

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
params = snakemake.params
started = time.perf_counter()

held_out = open_split(snakemake.input.split).load()
train, val = open_split(snakemake.input.train), open_split(snakemake.input.val)
train_images = train["images"].values
novel = ~seen_in(train_images, held_out["images"].values)
outputs_by_name = {Path(path).parent.parent.name: Path(path).parent for path in snakemake.output}
for name, method in params.methods.items():
    tick = time.perf_counter()
    model_path = snakemake.input.get(f"model_{name}")
    if model_path:
        model, method = load_trained(model_path)
        outputs = model_outputs(
            model,
            held_out["images"].values,
            method.get("likelihood", "bernoulli"),
            params.batch_size,
            train_images=train_images,
        )
    else:  # nmf factorises the training images and chooses its size on the validation ones
        outputs = reference_outputs(method, held_out, train=train, val=val)
    tables = evaluate(outputs, held_out, params.threshold, novel=novel, seed=params.probe_seed)
    out_dir = Path(outputs_by_name[name])
    for table in ("cells", "rates", "cell_rates", "separation", "latent"):
        write_csv(tables[table], out_dir / f"{table}.csv")
    seconds = time.perf_counter() - tick
    write_json(
        {
            "method": method,
            "model": model_path,
            "split": params.split,
            "data": snakemake.input.split,
            "n_images": int(held_out.sizes["sample"]),
            "novel_images": int(novel.sum()),
            "threshold": params.threshold,
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "reference": outputs.get("info"),  # what a reference chose (nmf: its components)
            "seconds": round(seconds, 3),
            "versions": versions("torch", "scikit-learn"),
        },
        out_dir / "eval.json",
    )
    logging.info(
        "%s (%s) on %d %s images: %.1f s",
        name,
        method["type"],
        held_out.sizes["sample"],
        params.split,
        seconds,
    )
logging.info("done in %.1f s", time.perf_counter() - started)
