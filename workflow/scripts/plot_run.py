"""Reconstruction grid and latent traversal of one trained model (rule run_figures)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import logging  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fgbg import figures  # noqa: E402
from fgbg.evaluate import model_outputs  # noqa: E402
from fgbg.illustrate import LAYER_NAMES, traverse_outputs  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split  # noqa: E402
from fgbg.training import load_trained  # noqa: E402

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)

scenario, model_name, seed = (snakemake.wildcards[k] for k in ("scenario", "model", "seed"))
run = f"{scenario} / {model_name} / seed {seed}"
model, model_config = load_trained(snakemake.input.model)
likelihood = model_config.get("likelihood", "bernoulli")
layered = model_config.get("type") == "layered"
test = open_split(snakemake.input.test).isel(sample=slice(snakemake.params.n_images))
images, disk_active = test["images"].values, test["disk_active"].values
out = model_outputs(model, images, likelihood)
figures.save(
    figures.reconstruction_grid(
        images,
        out["foreground"],
        out.get("target"),
        out.get("background"),
        title=f"Reconstructions of test images, {run}",
    ),
    snakemake.output.reconstruction,
)
dims = {name: codes.shape[1] for name, codes in out["codes"].items()}
# a spatial latent map (hundreds of patch latents) is not traversed dimension by dimension
blocks = [name for name, size in dims.items() if size <= snakemake.params.max_dims]
a = snakemake.params.amplitude
base, origin = None, f"one latent dimension at ±{a:g}, the rest 0"
if layered:
    # Its foreground latent is a map of hundreds of patch latents: at 0 both layers are
    # empty. Move each background dimension away from the code of a test image with an
    # active disk instead, every other latent at that image's posterior mean.
    k = int(np.argmax(disk_active.any(axis=1))) if disk_active.size else 0
    base = {name: codes[k] for name, codes in out["codes"].items()}
    moved = "/".join(blocks)
    origin = f"one {moved} dimension moved ±{a:g} from test image {k}'s posterior mean"
labels, decoded = traverse_outputs(
    model, dims, amplitude=a, likelihood=likelihood, blocks=blocks,
    names=LAYER_NAMES if layered else None, base=base,
)  # fmt: skip
figures.save(
    figures.latent_traversal(labels, decoded, title=f"Decoder outputs, {origin}, {run}"),
    snakemake.output.traversal,
)
logging.info("wrote %s, %s", snakemake.output.reconstruction, snakemake.output.traversal)
