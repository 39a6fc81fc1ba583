"""Train one model on in-memory images: reproducible, resumable, one log line per epoch.

The images stay on the device in their stored dtype (uint8 0/1: one byte a pixel) and each
batch is sliced from a seeded permutation and converted to float there; no Dataset or
DataLoader. Two generators, both seeded from `seed`, drive everything random after the
initialisation: one permutes the images each epoch, one draws the reparameterisation noise.
Every `checkpoint_every` epochs the model, optimiser, generator states and history are
written atomically to `checkpoint.pt` beside the outputs; a rerun with the same inputs resumes
from it and ends with the weights an uninterrupted run would have (on CPU: bit for bit).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import shutil
import socket
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from fgbg.config import RESTART_SEED_STEP, schema_defaults
from fgbg.logs import JobError
from fgbg.models import build_model, resolve_config
from fgbg.tables import atomic_write, versions, write_json, write_text

CHECKPOINT_NAME = "checkpoint.pt"
OUTPUT_NAMES = ("model.pt", "history.csv", "run.json")
TRAINING_DEFAULTS = schema_defaults("training")
EVAL_SEED_OFFSET = 7919  # the test loss uses its own fixed noise stream


def learning_rate(training_config: dict, epoch: int, decay_start: int | None = None) -> float:
    """Constant until `decay_start`, then falling linearly towards 0 over `lr_decay_epochs`
    epochs (the last of them trains at 1 / (lr_decay_epochs + 1) of the rate). Without a
    `decay_start` (the stopping rule has not fired) the decay fills the last epochs before
    the bound `epochs`."""
    rate, epochs = training_config["learning_rate"], training_config["epochs"]
    decay = min(training_config["lr_decay_epochs"], epochs)
    if not decay:
        return rate
    start = epochs - decay + 1 if decay_start is None else min(decay_start, epochs - decay + 1)
    remaining = start + decay - epoch  # epochs left including this one
    return rate * min(1.0, remaining / (decay + 1))


class StoppingRule:
    """When to stop, read from the validation loss only (the test split never reaches it).

    After each epoch: the loss improves when it is below the best so far by at least
    `min_improvement` of the best's size. After `patience` epochs without an improvement the
    learning rate starts to fall (`learning_rate`), and training ends when it has reached 0,
    `lr_decay_epochs` epochs later; `epochs` stays the bound. The weights kept are those of
    the epoch with the lowest validation loss. `patience` 0 (or no validation split) is the
    fixed schedule: `epochs` epochs, the last `lr_decay_epochs` decaying.

    The first `warmup` epochs (a model's own schedule, e.g. a loss weight still rising) do
    not count towards the patience.

    The state is a function of the history alone, so a resumed run replays it.
    """

    def __init__(self, training_config: dict, history: list[dict] = (), warmup: int = 0):
        self.config = training_config
        self.patience = training_config["patience"]
        self.warmup = warmup
        self.best = self.best_epoch = self.decay_start = None
        self.best_improving = math.inf
        self.since_improvement = 0
        for row in history:
            self.update(row["epoch"], row.get("val_loss"))

    def update(self, epoch: int, val_loss: float | None) -> bool:
        """Record an epoch's validation loss; True when it is the best so far."""
        if val_loss is None:
            self.best_epoch = epoch  # no validation split: the last epoch
            return True
        is_best = self.best is None or val_loss < self.best
        if is_best:
            self.best, self.best_epoch = val_loss, epoch
        reference = self.best_improving
        if (
            epoch <= self.warmup
            or reference == math.inf
            or val_loss < reference - self.config["min_improvement"] * abs(reference)
        ):
            self.best_improving, self.since_improvement = val_loss, 0
        else:
            self.since_improvement += 1
        if self.patience and self.decay_start is None and self.since_improvement >= self.patience:
            self.decay_start = epoch + 1
        return is_best

    def learning_rate(self, epoch: int) -> float:
        return learning_rate(self.config, epoch, self.decay_start)

    def last_epoch(self) -> int:
        """The epoch training ends with, as far as the rule knows now."""
        epochs, decay = self.config["epochs"], self.config["lr_decay_epochs"]
        if self.decay_start is None:
            return epochs
        return min(epochs, self.decay_start + decay - 1)


class TrainingError(JobError):
    """Training cannot go on (a non-finite loss); the message names the epoch."""


def available_devices() -> list[str]:
    """The devices this machine's torch can use: cpu, cuda:N for each GPU, mps."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str) -> torch.device:
    """The device `training.device` names; a JobError (one line saying what is available)
    when this machine does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    names = available_devices()
    if device.type == "cuda" and device.index is None:
        usable = any(n.startswith("cuda") for n in names)
    else:
        usable = str(device) in names
    if not usable:
        built = ""
        if device.type == "cuda" and not torch.version.cuda:
            built = f" (torch {torch.__version__} is built without CUDA)"
        raise JobError(
            f"training.device: {name} is not available on this machine{built}; available: "
            f"{', '.join(names)} (or auto)"
        )
    return device


def _atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _fingerprint(images: np.ndarray, model_config, training_config, seed) -> str:
    """Identifies a run, so that a checkpoint is only resumed by the run that wrote it."""
    data = zlib.crc32(np.ascontiguousarray(images).view(np.uint8).reshape(-1))
    setup = {k: v for k, v in training_config.items() if k != "checkpoint_every"}
    key = json.dumps([model_config, setup, seed, images.shape, str(images.dtype), data])
    return f"{zlib.crc32(key.encode()):08x}"


def _to_device(images: np.ndarray, device) -> torch.Tensor:
    """(N, H, W) array -> (N, 1, H, W) tensor on the device, in its own dtype."""
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).to(device)


def _as_float(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() if batch.dtype == torch.uint8 else batch.to(torch.float32)


@torch.no_grad()
def evaluate_loss(model, images: torch.Tensor, seed: int, batch_size: int = 1000) -> dict:
    """Mean loss terms over `images` with a fixed noise stream (comparable across epochs)."""
    model.eval()
    generator = torch.Generator(images.device).manual_seed(seed + EVAL_SEED_OFFSET)
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch_size):
        batch = _as_float(images[start : start + batch_size])
        for name, value in model.loss_terms(batch, generator).items():
            sums[name] = sums.get(name, 0.0) + value * len(batch)
    model.train()
    return {name: (total / len(images)).item() for name, total in sums.items()}


def _fit_readout(model, train_x: torch.Tensor) -> None:
    """What a model's readout fits with its weights fixed (the layered model's place
    rates), on the training images; models without one have nothing to fit."""
    if hasattr(model, "fit_readout"):
        model.fit_readout(train_x)


def save_model(model, model_config: dict, path: Path) -> None:
    height, width = model.padding.size
    _atomic_torch_save(
        {
            "format": MODEL_FILE_FORMAT,
            "fgbg_version": versions()["fgbg"],
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "model_config": model_config,
            "height": height,
            "width": width,
        },
        path,
    )


def _history_csv(history: list[dict]) -> str:
    columns = list(history[0])
    lines = [",".join(columns)]
    for row in history:
        lines.append(
            ",".join(repr(row[c]) if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    return "\n".join(lines) + "\n"


def train(
    images: np.ndarray,
    model_config: dict,
    training_config: dict,
    seed: int,
    out_dir,
    val_images: np.ndarray | None = None,
    threads: int | None = None,
    log: logging.Logger | None = None,
    fit_readout: bool = True,
) -> list[dict]:
    """Train a model on `images` (N, H, W) and write model.pt, history.csv and run.json
    into `out_dir`; return the history (one dict per epoch). With `fit_readout`, what the
    model's readout fits with the weights fixed is fitted on the training images first
    (`_fit_readout`).

    `val_images` (held out, the validation split) add a validation loss column per term to
    the history (`val_*`), for choosing settings; the test split never reaches training.
    """
    log = log or logging.getLogger("fgbg.training")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_config = resolve_config(model_config)
    training_config = {**TRAINING_DEFAULTS, **training_config}
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W) array, got shape {images.shape}")
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(training_config["device"])
    epochs, batch_size = training_config["epochs"], training_config["batch_size"]
    every = training_config["checkpoint_every"]
    height, width = images.shape[1:]
    if model_config["type"] == "layered":  # its likelihood is the data's (docs/models.md)
        binary = np.isin(images, (0, 1)).all()
        model_config["likelihood"] = "bernoulli" if binary else "gaussian"

    torch.manual_seed(seed)
    model = build_model(model_config, height, width).to(device)
    # fused: one kernel for the whole update; at small batches the per-tensor Adam steps
    # otherwise cost as much as the forward pass
    groups = model.param_groups() if hasattr(model, "param_groups") else None
    optimiser = torch.optim.Adam(
        groups or model.parameters(), lr=training_config["learning_rate"], fused=True
    )
    order_rng = torch.Generator(device).manual_seed(seed)
    noise_rng = torch.Generator(device).manual_seed(seed + 1)
    history: list[dict] = []
    best_state = None  # the weights of the best validation epoch so far
    start_epoch = 1

    checkpoint_path = out_dir / CHECKPOINT_NAME
    fingerprint = _fingerprint(images, model_config, training_config, seed)
    state = _read_checkpoint(checkpoint_path, device, log) if checkpoint_path.exists() else None
    if state is not None and state.get("fingerprint") == fingerprint:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        order_rng.set_state(state["order_rng"].cpu())
        noise_rng.set_state(state["noise_rng"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        history = state["history"]
        best_state = state["best_model"]
        start_epoch = state["epoch"] + 1
        log.info("resuming from %s after epoch %d", checkpoint_path, state["epoch"])
    elif state is not None:
        log.warning("ignoring %s: it belongs to another run", checkpoint_path)

    train_x = _to_device(images, device)
    val_x = _to_device(val_images, device) if val_images is not None else None
    n = len(train_x)
    rule = StoppingRule(
        training_config if val_x is not None else {**training_config, "patience": 0},
        history,
        warmup=model.warmup_epochs() if hasattr(model, "warmup_epochs") else 0,
    )
    log.info(
        "training %s on %d images of %d x %d, at most %d epochs (patience %d), batch %d, "
        "device %s, %d threads",
        model_config["type"],
        n,
        height,
        width,
        epochs,
        rule.patience,
        batch_size,
        device,
        torch.get_num_threads(),
    )
    model.train()
    epoch = start_epoch
    while epoch <= rule.last_epoch():
        tick = time.perf_counter()
        rate = rule.learning_rate(epoch)
        for group in optimiser.param_groups:  # a model may scale some groups' rate
            group["lr"] = rate * group.get("lr_scale", 1.0)
        order = torch.randperm(n, generator=order_rng, device=device)
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, n, batch_size):
            batch = _as_float(train_x[order[start : start + batch_size]])
            terms = model.loss_terms(batch, noise_rng, epoch=epoch)
            optimiser.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimiser.step()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.detach() * len(batch)
        row = {"epoch": epoch, "lr": rate}
        row |= {name: (total / n).item() for name, total in sums.items()}
        if not all(math.isfinite(v) for v in row.values()):
            bad = ", ".join(f"{k}={v}" for k, v in row.items() if not math.isfinite(v))
            raise TrainingError(f"non-finite loss in epoch {epoch}: {bad}; no model written")
        if val_x is not None:
            row.update({f"val_{k}": v for k, v in evaluate_loss(model, val_x, seed).items()})
        if rule.update(epoch, row.get("val_loss")):
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        row["seconds"] = round(time.perf_counter() - tick, 4)
        history.append(row)
        log.info(
            "epoch %d/%d  %s  %.2f s%s",
            epoch,
            rule.last_epoch(),
            "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "seconds")),
            row["seconds"],
            "  (best)" if rule.best_epoch == epoch else "",
        )
        if epoch % every == 0 and epoch < rule.last_epoch():
            _atomic_torch_save(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "best_model": best_state,
                    "optimiser": optimiser.state_dict(),
                    "order_rng": order_rng.get_state(),
                    "noise_rng": noise_rng.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                },
                checkpoint_path,
            )
        epoch += 1

    model.load_state_dict(best_state)  # the best validation epoch's weights
    model.eval()
    if fit_readout:
        _fit_readout(model, train_x)
    save_model(model, model_config, out_dir / "model.pt")
    write_text(_history_csv(history), out_dir / "history.csv")
    run = {
        "versions": versions("torch", "numpy"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "host": socket.gethostname(),
        "threads": torch.get_num_threads(),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "resumed_after_epoch": start_epoch - 1,
        "epochs_trained": len(history),
        "best_epoch": rule.best_epoch,
        "decay_started_epoch": rule.decay_start,
        "stopped_early": len(history) < epochs,
        "seed": seed,
        "n_train": n,
        "n_val": 0 if val_x is None else len(val_x),
        "image_size": [height, width],
        "training": training_config,
        "model": model_config,
    }
    write_json(run, out_dir / "run.json")
    checkpoint_path.unlink(missing_ok=True)
    log.info("wrote %s in %.1f s", out_dir, run["wall_seconds"])
    return history


def train_starts(images, model_config, training_config, seed, out_dir, val_images=None, **kw):
    """`train`, from `training.starts` initialisations (seeds seed + 1000 j, each into
    out_dir/start{j}/): the one whose kept (best) epoch has the lowest validation loss is
    copied into out_dir, and its run.json lists every start. A rule fixed in advance that
    reads no labels: a start that lost cells or drew a disk explains the images worse
    (docs/studies/layered-15-two-starts.md). With one start this is `train`. Returns the
    kept history. Only the kept start's readout is fitted (`_fit_readout`): the starts' own
    model.pt files are as trained."""
    starts = training_config.get("starts", 1)
    if starts == 1:
        return train(images, model_config, training_config, seed, out_dir, val_images, **kw)
    if val_images is None:
        raise ValueError("training.starts > 1 needs validation images to choose a start")
    out_dir = Path(out_dir)
    summaries, histories, runs = [], [], []
    for j in range(starts):
        start_seed = seed + RESTART_SEED_STEP * j
        history = train(
            images, model_config, training_config, start_seed, out_dir / f"start{j}",
            val_images, fit_readout=False, **kw,
        )  # fmt: skip
        histories.append(history)
        run = json.loads((out_dir / f"start{j}" / "run.json").read_text())
        runs.append(run)
        kept = next(row for row in history if row["epoch"] == run["best_epoch"])
        summaries.append(
            {"start": j, "seed": start_seed, "val_loss": kept["val_loss"],
             "best_epoch": run["best_epoch"], "epochs_trained": run["epochs_trained"],
             "wall_seconds": run["wall_seconds"]}
        )  # fmt: skip
    chosen = min(summaries, key=lambda s: s["val_loss"])
    source = out_dir / f"start{chosen['start']}"
    model, resolved = load_trained(source / "model.pt")
    device = resolve_device(training_config.get("device", TRAINING_DEFAULTS["device"]))
    _fit_readout(model.to(device), _to_device(images, device))
    save_model(model, resolved, out_dir / "model.pt")
    atomic_write(out_dir / "history.csv", lambda tmp: shutil.copyfile(source / "history.csv", tmp))
    run = runs[chosen["start"]] | {
        "starts": summaries,
        "kept_start": chosen["start"],
        "epochs_trained_all_starts": sum(s["epochs_trained"] for s in summaries),
        "wall_seconds": round(sum(s["wall_seconds"] for s in summaries), 3),
    }
    write_json(run, out_dir / "run.json")
    (kw.get("log") or logging.getLogger("fgbg.training")).info(
        "kept start %d of %d (validation losses %s)", chosen["start"], starts,
        ", ".join(f"{s['val_loss']:.2f}" for s in summaries),
    )  # fmt: skip
    return histories[chosen["start"]]


def _read_checkpoint(path: Path, device, log) -> dict | None:
    """A checkpoint's state, or None (with a warning) when it cannot be read: training
    then starts afresh, as for another run's checkpoint."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # any unreadable file; torch raises several kinds
        log.warning("ignoring %s: unreadable (%s)", path, type(error).__name__)
        return None


# The layout of model.pt; a file of another layout (fgbg 0.2.0 and earlier wrote none) is
# refused with the version that wrote it, never read as a model it was not trained as.
# Format 3: the layered model's background mask became a B-spline (bilinear in format 2),
# so its format-2 weights mean another background; the thesis family's still read.
# Format 4: the layered model's readout refits its templates on binary images, so a
# format-3 file's templates and rates were fitted for another readout.
# Format 5: on intensities the layered model's u is stored at another scale (`gaussian`),
# so a format-4 file's u would be misread.
MODEL_FILE_FORMAT = 5
STILL_READ = {2: ("dual", "vae"), 3: ("dual", "vae"), 4: ("dual", "vae")}  # older formats


def load_trained(path) -> tuple[torch.nn.Module, dict]:
    """(model on CPU in eval mode, its resolved model config) from a model.pt.

    A file that is not a model.pt this code can load (damaged, truncated, another format) is
    a JobError naming it and how to retrain it; a file of another MODEL_FILE_FORMAT names
    the fgbg version that wrote it.
    """
    retrain = f"retrain it with: snakemake --cores 1 --forcerun {path}"

    def damaged(error) -> JobError:
        return JobError(
            f"damaged model file {path} (unreadable: {type(error).__name__}); {retrain}"
        )

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        written_by = state.get("fgbg_version", "0.2.0 or earlier")
        written_format = state.get("format", "none")
        model_type = state.get("model_config", {}).get("type")
    except Exception as error:  # torch raises several kinds; the reason is not the point
        raise damaged(error) from None
    if not (
        written_format == MODEL_FILE_FORMAT or model_type in STILL_READ.get(written_format, ())
    ):
        raise JobError(
            f"model file {path} was written by fgbg {written_by} (model file format "
            f"{written_format}), which this fgbg {versions()['fgbg']} (format "
            f"{MODEL_FILE_FORMAT}) does not read; {retrain} (or read it with that version)"
        )
    try:
        model = build_model(state["model_config"], state["height"], state["width"])
        model.load_state_dict(state["state_dict"])
    except Exception as error:
        raise damaged(error) from None
    return model.eval(), state["model_config"]
