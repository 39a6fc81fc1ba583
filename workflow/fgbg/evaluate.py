"""Deterministic evaluation of one trained model on the held-out test split.

z = posterior mean (no sampling), batches on the CPU, no gradients. Cell score s(i, k) =
mean of the foreground decoder's Bernoulli mean (the decoded mean for a Gaussian
likelihood) over the pixels of cell k in image i. ``score_z2_off`` decodes the same
posterior means with the background latent set to zero (the thesis code's
``switch_off_z2``); the single-VAE baseline has no background latent to switch off, so
its ``score_z2_off`` equals its ``score`` (its whole output is its foreground view).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fgbg.metrics import latent as latent_metrics
from fgbg.metrics import rates as rate_metrics

BACKGROUND_LATENT = "z2"


def _mean(output: torch.Tensor, likelihood: str) -> torch.Tensor:
    """The decoder's mean image from its raw output (logits for Bernoulli)."""
    return torch.sigmoid(output) if likelihood == "bernoulli" else output


@torch.no_grad()
def predict(model, images: np.ndarray, likelihood: str = "bernoulli", batch_size: int = 250):
    """Posterior means and decoded means for (N, H, W) images, as numpy arrays.

    Returns a dict: ``codes`` {block: (N, dim)}; ``foreground`` and ``foreground_z2_off``
    (N, H, W); ``background`` and ``target`` (N, h, w), or None for a model without a
    background branch.
    """
    model.eval()
    parts: dict[str, list] = {"foreground": [], "foreground_z2_off": []}
    codes: dict[str, list] = {}
    background, target = [], []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(np.asarray(images[start : start + batch_size], dtype=np.float32))
        x = x.unsqueeze(1)
        latents = {name: mu for name, (mu, _logvar) in model.encode(x).items()}
        for name, mu in latents.items():
            codes.setdefault(name, []).append(mu.reshape(len(mu), -1).numpy())
        out = model.decode(latents)
        parts["foreground"].append(_mean(out["foreground"], likelihood)[:, 0].numpy())
        if BACKGROUND_LATENT in latents:
            off = {**latents, BACKGROUND_LATENT: torch.zeros_like(latents[BACKGROUND_LATENT])}
            fg_off = _mean(model.decode(off)["foreground"], likelihood)[:, 0].numpy()
        else:
            fg_off = parts["foreground"][-1]
        parts["foreground_z2_off"].append(fg_off)
        if "background" in out:
            background.append(torch.sigmoid(out["background"])[:, 0].numpy())
            target.append(model.background_target(x)[:, 0].numpy())
    result = {key: np.concatenate(value) for key, value in parts.items()}
    result["codes"] = {name: np.concatenate(value) for name, value in codes.items()}
    result["background"] = np.concatenate(background) if background else None
    result["target"] = np.concatenate(target) if target else None
    return result


def cell_scores(foreground: np.ndarray, cell_mask: np.ndarray) -> np.ndarray:
    """(N, H, W) images, (cell, H, W) masks -> (N, cell) mean over each cell's pixels."""
    mask = np.asarray(cell_mask, dtype=np.float64)
    return np.einsum("nyx,cyx->nc", foreground, mask) / mask.sum(axis=(1, 2))


def evaluate(
    model,
    dataset,
    threshold: float,
    likelihood: str = "bernoulli",
    batch_size: int = 250,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """cells, rates and latent tables of one model on one test split (an xarray Dataset
    with images, cell_active, disk_active, cell_mask, disk_mask)."""
    cell_mask = dataset["cell_mask"].values.astype(bool)
    disk_mask = dataset["disk_mask"].values.astype(bool)
    disk_active = dataset["disk_active"].values
    cell_active = dataset["cell_active"].values
    overlap = np.einsum("cyx,dyx->cd", cell_mask.astype(int), disk_mask.astype(int)) > 0
    out = predict(model, dataset["images"].values, likelihood, batch_size)
    cells = rate_metrics.cell_table(
        cell_active,
        cell_scores(out["foreground"], cell_mask),
        cell_scores(out["foreground_z2_off"], cell_mask),
        overlap,
        disk_active,
    )
    rates = rate_metrics.rates_table(cells, threshold, n_disks=disk_mask.shape[0])
    latent = latent_metrics.latent_table(out["codes"], disk_active, cell_active, seed=seed)
    if out["background"] is not None:
        background = latent_metrics.background_table(out["background"], out["target"])
        latent = pd.concat([background, latent], ignore_index=True)
    return {"cells": cells, "rates": rates, "latent": latent}


@torch.no_grad()
def traverse(model, dims: dict[str, int], amplitude: float = 5.0, likelihood="bernoulli"):
    """Foreground means of one-hot latent states (+a, -a on each dimension, the rest 0).

    `dims` {block: size} in the model's block order. Returns (labels, images): labels like
    ``z1[0] = +5``, images (2 * total dims, H, W), ordered dim by dim, + before -.
    """
    model.eval()
    total = sum(dims.values())
    states, labels = [], []
    offset = 0
    for name, size in dims.items():
        for d in range(size):
            for sign in (1, -1):
                state = torch.zeros(total)
                state[offset + d] = sign * amplitude
                states.append(state)
                labels.append(f"{name}[{d}] = {sign * amplitude:+g}")
        offset += size
    stacked = torch.stack(states)
    latents, offset = {}, 0
    for name, size in dims.items():
        latents[name] = stacked[:, offset : offset + size]
        offset += size
    images = _mean(model.decode(latents)["foreground"], likelihood)[:, 0].numpy()
    return labels, images
