"""Decomposition of test images into the layered model's foreground and background layers,
beside the true cell and disk masks (rule decomposition_figure)."""

# ruff: noqa: F821 (snakemake is injected by Snakemake's script directive)

import sys

sys.path.insert(0, snakemake.scriptdir + "/..")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fgbg import figures  # noqa: E402
from fgbg.logs import log_to_file  # noqa: E402
from fgbg.store import open_split  # noqa: E402
from fgbg.training import load_trained  # noqa: E402

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)

scenario, model_name, seed = (snakemake.wildcards[k] for k in ("scenario", "model", "seed"))
model, _ = load_trained(snakemake.input.model)
test = open_split(snakemake.input.test).isel(sample=slice(snakemake.params.n_images)).load()
images = test["images"].values
with torch.no_grad():
    f, b = model.layers(torch.as_tensor(images, dtype=torch.float32).unsqueeze(1))
cells = np.einsum("nc,cyx->nyx", test["cell_active"].values, test["cell_mask"].values) > 0
disks = np.einsum("nd,dyx->nyx", test["disk_active"].values, test["disk_mask"].values) > 0
figures.save(
    figures.decomposition(
        images,
        f[:, 0].numpy(),
        b[:, 0].numpy(),
        cells,
        disks,
        title=f"Layers of test images, {scenario} / {model_name} / seed {seed}",
    ),  # fmt: skip
    snakemake.output.figure,
)
