"""Diagnostics of trained layered runs on their validation images. They use the labels, so
they are never part of a run's evaluation, only of a study's reading of it
(`python -m fgbg.study RESULTS --moved | --inference | --filled`).

- `moved_disk`: where f draws a disk, is the objective or the optimisation at fault?
- `inference_foregrounds`: other ways to read f from the same trained weights (without the
  refinement steps, E_q[f] instead of f at the posterior means, steps from the place prior,
  the presence readout).
- `filled_hole`: where an active cell with one off pixel under a disk is left undrawn, is
  the objective or the optimisation at fault?
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fgbg.evaluate import evaluate, image_batches, model_outputs
from fgbg.models import build_model
from fgbg.models.base import reparameterise
from fgbg.readme_results import long_values
from fgbg.store import open_split
from fgbg.training import load_trained

INFERENCE = ("refined", "encoder", "expected", "from_prior", "presence", "presence_fitted")
CHECK_SEED = 1  # the noise of E_q[f]'s draws


def layered_runs(results, models=None, split="val"):
    """(scenario, model name, seed, model, its data's `split`) of every trained layered run
    (the diagnostics read the validation split; `split="test"` for a test-split reading)."""
    for path in sorted(Path(results, "models").glob("*/*/seed*/model.pt")):
        scenario, model_name, seed = path.parts[-4], path.parts[-3], int(path.parts[-2][4:])
        if models is not None and model_name not in models:
            continue
        model, config = load_trained(path)
        if config["type"] != "layered":
            continue
        yield (
            scenario,
            model_name,
            seed,
            model,
            open_split(_replicate(results, scenario, seed) / f"{split}.zarr"),
        )


def _replicate(results, scenario, seed) -> Path:
    """The run's data folder: its seed's replicate, or the scenario's shared one."""
    data = Path(results, "data", scenario)
    return data / (f"seed{seed}" if (data / f"seed{seed}").exists() else "shared")


def _threshold(results, scenario, model_name, seed) -> float:
    """The evaluation's threshold for the run (its eval.json), 0.5 when it was not evaluated."""
    path = Path(results, "eval", scenario, model_name, f"seed{seed}", "eval.json")
    return json.loads(path.read_text()).get("threshold", 0.5) if path.exists() else 0.5


def moved_disk(model, images, on, region) -> dict:
    """The layered objective on the images where a disk is on (`on`, (N,) bool), as trained
    and with the disk moved into the background: f off and b at the disk's observed on-rate
    over `region`, the disk's pixels that no cell covers (H, W). Posterior means; f's KL is
    kept, so the moved loss is an upper bound. A moved loss below the trained one says the
    objective prefers the disk in the background and the optimisation left it in f."""
    x = torch.as_tensor(images[on], dtype=torch.float32).unsqueeze(1)
    mask = torch.as_tensor(region, dtype=torch.bool).expand_as(x)
    rate = x[mask].mean().clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        posteriors = model.encode(x)
        out = model.decode({name: mu for name, (mu, _logvar) in posteriors.items()})
        f_logits, b_logits = out["foreground"], out["background"]
        trained = model.objective(x, f_logits, b_logits, posteriors)["loss"].item()
        moved = model.objective(
            x,
            torch.where(mask, torch.full_like(f_logits, -30.0), f_logits),
            torch.where(mask, torch.logit(rate).expand_as(b_logits), b_logits),
            posteriors,
        )["loss"].item()
        f_on_disk = torch.sigmoid(f_logits)[mask].mean().item()
    return {"f_on_disk": f_on_disk, "loss": trained, "loss_moved": moved,
            "change": moved - trained, "on_rate": rate.item()}  # fmt: skip


def moved_disk_table(results, models=None, min_f=0.5) -> pd.DataFrame:
    """`moved_disk` on the validation images of every layered run (per disk) whose mean f
    over an active disk's cell-free pixels exceeds `min_f`: a disk in the foreground."""
    rows = []
    for scenario, model_name, seed, model, split in layered_runs(results, models):
        images, cells = split["images"].values, split["cell_mask"].values.any(0)
        active = split["disk_active"].values.astype(bool)  # read once, not once per disk
        for disk, disk_mask in enumerate(split["disk_mask"].values.astype(bool)):
            on = active[:, disk]
            check = moved_disk(model, images, on, disk_mask & ~cells)
            if check["f_on_disk"] > min_f:
                rows.append({"scenario": scenario, "model": model_name, "seed": seed,
                             "disk": disk, "images": int(on.sum()), **check})  # fmt: skip
    return pd.DataFrame(rows)


def _f_at_means(model, posteriors):
    out = model.decode({name: mu for name, (mu, _logvar) in posteriors.items()})
    return torch.sigmoid(out["foreground"])[:, 0]


def presence_model(model, train_images, refit=False):
    """`model` read as fg_readout presence: a presence run itself (its rates learned in
    training), or a copy with its place rates fitted on `train_images` (N, H, W) after
    training (`fit_place_rates`, round 17's rates) for a means run or with `refit`; the
    weights are the run's."""
    if model.config["fg_readout"] == "presence" and not refit:
        return model
    presence = build_model({**model.config, "fg_readout": "presence"}, model.height, model.width)
    missing, unexpected = presence.load_state_dict(model.state_dict(), strict=False)
    if model.config["fg_readout"] == "means" and (missing != ["place_rate"] or unexpected):
        raise RuntimeError(f"not a means run of a place painter: {missing} {unexpected}")
    presence.eval().fit_place_rates(torch.as_tensor(train_images).unsqueeze(1))
    return presence


def _ways_fitting_rates(model, ways) -> list[str]:
    """The presence ways of `ways` that fit place rates on the training images for `model`:
    `presence` for a means run, `presence_fitted` for a presence run (place painter only)."""
    if model.config["fg_painter"] != "place":
        return []
    fitted = "presence_fitted" if model.config["fg_readout"] == "presence" else "presence"
    return [fitted] if fitted in ways else []


def inference_foregrounds(
    model, images, samples=16, batch_size=250, train_images=None, ways=INFERENCE
) -> dict[str, np.ndarray]:
    """f (N, H, W) of the same trained weights read each of `ways` (of INFERENCE):
    refined: at the posterior means after fg_refine_steps steps from the encoder's (what the
    evaluation scores with fg_readout means); encoder: at the encoder's means, no steps;
    expected: E_q[f] under the refined posterior (`samples` draws of z_fg) instead of f at
    its means; from_prior: the steps from the place prior's means (N(0, I)'s without it),
    the encoder's variances;
    presence: the fg_readout presence output (what the evaluation scores by default), for a
    means run with its rates fitted on `train_images` (only given them);
    presence_fitted: a presence run's output with its rates fitted on `train_images` after
    training instead of its own, learned ones (only given them).
    Both presence ways need a place painter."""
    parts: dict[str, list] = {name: [] for name in ways}
    readers = {}
    if "presence" in ways and model.config["fg_readout"] == "presence":
        readers["presence"] = model
    if train_images is not None:
        for way in _ways_fitting_rates(model, ways):
            readers[way] = presence_model(model, train_images, refit=True)
    generator = torch.Generator().manual_seed(CHECK_SEED)
    with torch.no_grad():
        for x in image_batches(images, batch_size):
            encoded = model.encode(x)
            refined = model.refine(x, encoded)
            if "refined" in ways:
                parts["refined"].append(_f_at_means(model, refined))
            if "encoder" in ways:
                parts["encoder"].append(_f_at_means(model, encoded))
            if "expected" in ways:
                mu_r, lv_r = refined["z_fg"]
                draws = [
                    _f_at_means(
                        model, {**refined, "z_fg": (reparameterise(mu_r, lv_r, generator), 0)}
                    )
                    for _ in range(samples)
                ]
                parts["expected"].append(torch.stack(draws).mean(0))
            if "from_prior" in ways:
                mu, logvar = encoded["z_fg"]
                start = torch.zeros_like(mu)
                if model.config["fg_place_prior"]:
                    start = start + model.place_prior_mean
                from_prior = model.refine(x, {**encoded, "z_fg": (start, logvar)})
                parts["from_prior"].append(_f_at_means(model, from_prior))
            means = {name: mu for name, (mu, _logvar) in refined.items()}
            for way, reader in readers.items():  # their output at the same refined means
                parts[way].append(reader.presence_foreground(x, means)[:, 0])
    return {name: torch.cat(values).numpy() for name, values in parts.items() if values}


def inference_long(results, models=None, split="val", ways=INFERENCE) -> pd.DataFrame:
    """Per-run values (scenario, model, seed, stratum, metric, value, inference) of every
    layered run's images of `split`, f read each of `ways` of `inference_foregrounds`."""
    frames = []
    for scenario, model_name, seed, model, data in layered_runs(results, models, split):
        data = data.load()
        threshold = _threshold(results, scenario, model_name, seed)
        train = None
        if _ways_fitting_rates(model, ways):  # rates to fit: read the training images
            train = open_split(_replicate(results, scenario, seed) / "train.zarr")
            train = train["images"].values
        found = inference_foregrounds(model, data["images"].values, train_images=train, ways=ways)
        for way, foreground in found.items():
            tables = evaluate({"foreground": foreground}, data, threshold)
            ids = {"scenario": scenario, "model": model_name, "seed": seed}
            rates, separation = tables["rates"].assign(**ids), tables["separation"].assign(**ids)
            frames.append(long_values(rates, separation).assign(inference=way))
    return pd.concat(frames, ignore_index=True)


def filled_hole(model, image, cell_mask) -> dict:
    """One image with an active cell that has one off pixel: the layered objective at the
    posterior means (KL included, as in `moved_disk`) under the image's own refined
    posterior and under the posterior refined on the image with the cell's hole filled (the
    background's code the image's own). A lower loss with the filled posterior says the
    optimisation left the cell out; a higher one that the objective prefers it out.
    (At the means, not over samples: one sample of the background's code moves the loss by
    tens of nats, and 32 samples' mean still by about 15.)"""
    x = torch.as_tensor(image, dtype=torch.float32)[None, None]
    filled = x.clone()
    cell = torch.as_tensor(cell_mask, dtype=torch.bool)
    filled[0, 0][cell] = 1.0
    rows = {}
    with torch.no_grad():
        own = model.refine(x, model.encode(x))
        other = {**own, "z_fg": model.refine(filled, model.encode(filled))["z_fg"]}
        for name, posteriors in (("", own), ("_filled", other)):
            out = model.decode({n: mu for n, (mu, _logvar) in posteriors.items()})
            loss = model.objective(x, out["foreground"], out["background"], posteriors)
            rows[f"f{name}"] = torch.sigmoid(out["foreground"])[0, 0][cell].mean().item()
            rows[f"loss{name}"] = loss["loss"].item()
    return {**rows, "change": rows["loss_filled"] - rows["loss"]}


def filled_hole_table(results, models=None, max_f=0.5) -> pd.DataFrame:
    """`filled_hole` for every active cell under an active disk with one off pixel whose
    score (mean refined f) is at most `max_f`, in the validation images of every layered run;
    one row per case."""
    rows = []
    for scenario, model_name, seed, model, split in layered_runs(results, models):
        split = split.load()
        images, masks = split["images"].values, split["cell_mask"].values.astype(bool)
        f = model_outputs(model, images)["foreground"]  # what the evaluation scores
        cells = evaluate({"foreground": f}, split, 0.5)["cells"]
        holes = np.stack([(1 - images[:, mask]).sum(1) for mask in masks], 1)
        cells["holes"] = holes[cells["sample"], cells["cell"]]
        cases = cells[
            (cells["stratum"] == "inside_bg_on")
            & (cells["truth"] == 1)
            & (cells["holes"] == 1)
            & (cells["score"] <= max_f)
        ]
        for case in cases.itertuples():
            check = filled_hole(model, images[case.sample], masks[case.cell])
            rows.append({"scenario": scenario, "model": model_name, "seed": seed,
                         "sample": case.sample, "cell": case.cell, **check})  # fmt: skip
    return pd.DataFrame(rows)
