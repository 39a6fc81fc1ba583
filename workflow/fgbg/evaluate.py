"""Deterministic evaluation of one method (a trained model or a reference) on a held-out split.

The evaluation asks a method one question, "what is your foreground output for these
images?" (`outputs`, a dict), and scores the answer the same way for every method:

- ``foreground`` (N, H, W): the foreground output in [0, 1] (a model's Bernoulli mean of its
  foreground layer, z = posterior mean, the layered model's refined first; for a Gaussian
  likelihood the decoded mean);
- ``scores`` (N, cell), optional: the method's own cell scores (neuropil); by default a cell's
  score is the mean of ``foreground`` over its pixels;
- ``foreground_z2_off``, optional: the output with the background latent switched off (the
  thesis code's ``switch_off_z2``); without it ``score_z2_off`` equals ``score``;
- ``codes`` {block: (N, dim)}, optional: posterior means, for the latent probes;
- ``background``, ``target``, ``constant`` (N, h, w), optional: a background decoder's
  prediction of g(x), g(x) itself, and the constant predictor (the per-block median of g
  over the training images), for the background error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fgbg.layout import overlaps
from fgbg.metrics import latent as latent_metrics
from fgbg.metrics import rates as rate_metrics
from fgbg.metrics.separation import separation_table

BACKGROUND_LATENT = "z2"


def image_batches(images: np.ndarray, batch_size: int):
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size], dtype=np.float32)
        yield torch.as_tensor(batch).unsqueeze(1)


@torch.no_grad()
def model_outputs(model, images, likelihood="bernoulli", batch_size=250, train_images=None):
    """A trained model's outputs (see the module docstring) for (N, H, W) images.

    A model provides ``encode`` and ``foreground_layer(x, switched_off=())`` (its foreground
    mean with the named latent blocks at zero); one with a background branch also
    ``background_branch(x) -> (prediction, target)`` and ``background_target(x)`` (g(x) alone,
    for the constant predictor over the training images).
    """
    model.eval()
    parts: dict[str, list] = {"foreground": [], "foreground_z2_off": []}
    codes: dict[str, list] = {}
    background, target = [], []
    for x in image_batches(images, batch_size):
        for name, (mu, _logvar) in model.encode(x).items():
            codes.setdefault(name, []).append(mu.reshape(len(mu), -1).numpy())
        parts["foreground"].append(model.foreground_layer(x)[:, 0].numpy())
        if BACKGROUND_LATENT in codes:
            off = model.foreground_layer(x, switched_off=(BACKGROUND_LATENT,))[:, 0].numpy()
            parts["foreground_z2_off"].append(off)
        if hasattr(model, "background_branch"):
            prediction, truth = model.background_branch(x)
            background.append(prediction[:, 0].numpy())
            target.append(truth[:, 0].numpy())
    out = {key: np.concatenate(value) for key, value in parts.items() if value}
    out["codes"] = {name: np.concatenate(value) for name, value in codes.items()}
    if background:
        out["background"], out["target"] = np.concatenate(background), np.concatenate(target)
        if train_images is not None:
            batches = image_batches(train_images, 1000)
            g_train = np.concatenate([model.background_target(x)[:, 0].numpy() for x in batches])
            out["constant"] = np.broadcast_to(np.median(g_train, axis=0), out["target"].shape)
    return out


def cell_scores(foreground: np.ndarray, cell_mask: np.ndarray) -> np.ndarray:
    """(N, H, W) images, (cell, H, W) masks -> (N, cell) mean over each cell's pixels."""
    mask = np.asarray(cell_mask, dtype=np.float64)
    return np.einsum("nyx,cyx->nc", foreground, mask) / mask.sum(axis=(1, 2))


def disk_coverage(cell_mask: np.ndarray, disk_mask: np.ndarray) -> np.ndarray:
    """(cell,) fraction of each cell's pixels inside any disk."""
    cells = np.asarray(cell_mask, dtype=bool)
    in_disk = np.asarray(disk_mask, dtype=bool).any(axis=0)
    return (cells & in_disk).sum(axis=(1, 2)) / cells.sum(axis=(1, 2))


def evaluate(outputs: dict, dataset, threshold: float, novel=None, seed: int = 0) -> dict:
    """cells, rates, cell_rates, separation and latent tables of one method's `outputs` on
    one split (an xarray Dataset with images, cell_active, disk_active, cell_mask,
    disk_mask); `novel` (N,) marks the images that occur in no training split."""
    cell_mask = dataset["cell_mask"].values.astype(bool)
    disk_mask = dataset["disk_mask"].values.astype(bool)
    disk_active = dataset["disk_active"].values
    cell_active = dataset["cell_active"].values
    scores = outputs.get("scores")
    if scores is None:
        scores = cell_scores(outputs["foreground"], cell_mask)
    off = outputs.get("foreground_z2_off")
    scores_off = scores if off is None else cell_scores(off, cell_mask)
    overlap = overlaps(cell_mask, disk_mask)
    cells = rate_metrics.cell_table(cell_active, scores, scores_off, overlap, disk_active, novel)
    coverage = disk_coverage(cell_mask, disk_mask)
    latent = latent_metrics.latent_table(outputs.get("codes", {}), disk_active, cell_active, seed)
    if "background" in outputs:
        errors = [latent_metrics.background_table(outputs["background"], outputs["target"])]
        if "constant" in outputs:
            constant = latent_metrics.background_table(outputs["constant"], outputs["target"])
            errors.append(constant.assign(latent="constant"))
        latent = pd.concat([*errors, latent], ignore_index=True)
    return {
        "cells": cells,
        "rates": rate_metrics.rates_table(cells, threshold, n_disks=disk_mask.shape[0]),
        "cell_rates": rate_metrics.cell_rates_table(cells, threshold, coverage),
        "separation": separation_table(
            outputs["foreground"], cell_mask, disk_mask, cell_active, disk_active
        ),
        "latent": latent,
    }
