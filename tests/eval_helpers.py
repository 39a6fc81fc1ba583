"""Tiny synthetic test splits and a stand-in model for the evaluation tests.

The stand-in obeys the model contract (encode -> {block: (mu, logvar)}, decode ->
{"foreground", "background"}, background_target) with known outputs, so the metrics have
oracles; it is not a model of the package.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import yaml
from torch import nn

from fgbg.config import load_config, scenario_params
from fgbg.evaluate import evaluate, model_outputs
from fgbg.layout import overlaps, scenario_masks
from fgbg.models.base import _VAEBase
from fgbg.models.dual import DualVAE

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(yaml.safe_load((ROOT / "config.yaml").read_text()))


def clean_split(scenario: str = "x90_20", n: int = 200, seed: int = 0) -> xr.Dataset:
    """A test split of the default geometry whose images hold the active cells only (the
    clean foreground), with cell and disk activity drawn at the scenario's probabilities."""
    params = scenario_params(CONFIG, scenario)
    cells, disks = scenario_masks(params)
    rng = np.random.default_rng(seed)
    cell_active = (rng.random((n, len(cells))) < 0.5).astype(np.uint8)
    probs = np.array([d["probability"] for d in params["disks"]])
    disk_active = (rng.random((n, len(disks))) < probs).astype(np.uint8)
    images = (np.einsum("nc,cyx->nyx", cell_active, cells.astype(np.uint8)) > 0).astype(np.uint8)
    return xr.Dataset(
        {
            "images": (("sample", "y", "x"), images),
            "cell_active": (("sample", "cell"), cell_active),
            "disk_active": (("sample", "disk"), disk_active),
            "cell_mask": (("cell", "y", "x"), cells.astype(np.uint8)),
            "disk_mask": (("disk", "y", "x"), disks.astype(np.uint8)),
        }
    )


def overlap_of(dataset: xr.Dataset) -> np.ndarray:
    return overlaps(
        dataset["cell_mask"].values.astype(bool), dataset["disk_mask"].values.astype(bool)
    )


class StandIn(nn.Module):
    """z1 = each cell's mean intensity, z2 = the 2 x 2 block means; decodes z1 to the cells it
    names (logits +-20) shifted by `shift` * mean(z2), and z2 to g(x) exactly."""

    # the evaluation contract's read-outs, as the package's models implement them
    foreground_layer = _VAEBase.foreground_layer
    foreground_mean = _VAEBase.foreground_mean

    def __init__(self, cell_mask, pool=30, shift=0.0, dual=True):
        super().__init__()
        self.config = {"likelihood": "bernoulli"}
        if dual:
            self.background_branch = partial(DualVAE.background_branch, self)
        self.masks = torch.as_tensor(np.asarray(cell_mask), dtype=torch.float32)
        self.height, self.width = self.masks.shape[1:]
        self.pool, self.shift, self.dual = pool, shift, dual

    def encode(self, x):
        cells = torch.einsum("nyx,cyx->nc", x[:, 0], self.masks) / self.masks.sum(dim=(1, 2))
        if not self.dual:
            return {"z": (cells, torch.zeros_like(cells))}
        blocks = nn.functional.avg_pool2d(x, self.pool).reshape(len(x), -1)
        return {"z1": (cells, torch.zeros_like(cells)), "z2": (blocks, torch.zeros_like(blocks))}

    def decode(self, latents):
        z1 = latents["z1" if self.dual else "z"]
        logits = 40 * (torch.einsum("nc,cyx->nyx", z1, self.masks) - 0.5)
        out = {}
        if self.dual:
            z2 = latents["z2"]
            logits = logits + self.shift * z2.mean(dim=1)[:, None, None]
            grid = (self.height // self.pool, self.width // self.pool)
            out["background"] = (12 * (z2 - 0.5)).reshape(len(z2), 1, *grid)
        out["foreground"] = logits[:, None]
        return out

    def background_target(self, x):
        return torch.sigmoid(12 * (nn.functional.avg_pool2d(x, self.pool) - 0.5))


def evaluate_model(model, dataset, threshold=0.5, batch_size=250, **kwargs):
    """The evaluation tables of a model on a split, as the evaluate rule computes them."""
    outputs = model_outputs(model, dataset["images"].values, batch_size=batch_size)
    return evaluate(outputs, dataset, threshold, **kwargs)


def stand_in(dataset, **kwargs) -> StandIn:
    return StandIn(dataset["cell_mask"].values, **kwargs)


class Constant(StandIn):
    """Decodes every latent state to the same grey image."""

    def decode(self, latents):
        out = super().decode(latents)
        out["foreground"] = torch.zeros_like(out["foreground"])
        return out
