"""Training: reproducible, resumable after kill -9, stops on NaN, loads with weights_only."""

import json
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_runner import snakemake

from fgbg.logs import JobError
from fgbg.models import build_model, resolve_config
from fgbg.training import (
    StoppingRule,
    TrainingError,
    available_devices,
    evaluate_loss,
    learning_rate,
    load_trained,
    resolve_device,
    save_model,
    train,
    train_starts,
)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DUAL = {"type": "dual", "fg_channels": [8, 16], "fg_hidden": 32, "bg_channels": 4, "bg_hidden": 8}
TRAINING = {"epochs": 4, "batch_size": 16, "device": "cpu", "checkpoint_every": 2}
# a stopping rule that fires after two epochs without a 3 % improvement: on tiny data at a
# high learning rate it stops after about 11 epochs
STOPPING = {**TRAINING, "epochs": 16, "patience": 2, "min_improvement": 0.03, "lr_decay_epochs": 2}
STOPPING["learning_rate"] = 0.01
STOPPING["checkpoint_every"] = 1


def tiny_images(n=48, size=30, seed=0):
    """Random 6 x 6 squares on a 30 x 30 grid, plus a big block in half of the images."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        for row, col in [(2, 3), (12, 18), (20, 5)]:
            if rng.random() < 0.5:
                images[i, row : row + 6, col : col + 6] = 1
        if rng.random() < 0.5:
            images[i, 15:, :15] |= (rng.random((15, 15)) < 0.8).astype(np.uint8)
    return images


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def history_without_time(path):
    return pd.read_csv(path).drop(columns="seconds")


def test_outputs_and_falling_loss(tmp_path):
    history = train(
        tiny_images(), DUAL, TRAINING, seed=0, out_dir=tmp_path, val_images=tiny_images(16, seed=1)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "model.pt", "run.json"]
    table = pd.read_csv(tmp_path / "history.csv")
    assert list(table.columns) == [
        "epoch", "lr", "loss", "ll_fg", "kl_z1", "ll_bg", "kl_z2",
        "val_loss", "val_ll_fg", "val_kl_z1", "val_ll_bg", "val_kl_z2", "seconds",
    ]  # fmt: skip
    assert table["epoch"].tolist() == [1, 2, 3, 4] and len(history) == 4
    assert table["loss"].iloc[-1] < table["loss"].iloc[0]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["device"] == "cpu" and run["seed"] == 0 and run["threads"] >= 1
    assert set(run["versions"]) == {"python", "fgbg", "torch", "numpy"}
    assert run["training"]["batch_size"] == 16 and run["model"]["fg_channels"] == [8, 16]
    assert run["wall_seconds"] > 0 and run["n_train"] == 48 and run["n_val"] == 16


def test_two_cpu_runs_are_identical(tmp_path):
    for name in ("a", "b"):
        train(tiny_images(), DUAL, TRAINING, seed=3, out_dir=tmp_path / name, threads=1)
    pd.testing.assert_frame_equal(
        history_without_time(tmp_path / "a/history.csv"),
        history_without_time(tmp_path / "b/history.csv"),
        check_exact=True,
    )
    assert_same_weights(weights(tmp_path / "a/model.pt"), weights(tmp_path / "b/model.pt"))
    train(tiny_images(), DUAL, TRAINING, seed=4, out_dir=tmp_path / "c", threads=1)
    assert not history_without_time(tmp_path / "c/history.csv").equals(
        history_without_time(tmp_path / "a/history.csv")
    )


KILLED_RUN = """
import logging, os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_training import DUAL, STOPPING, tiny_images
from fgbg.training import train

class KillAfterEpoch3(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("epoch 3/"):
            os.kill(os.getpid(), signal.SIGKILL)

log = logging.getLogger("killed")
log.setLevel(logging.INFO)
log.addHandler(KillAfterEpoch3())
train(tiny_images(), DUAL, STOPPING, seed=5, out_dir={out!r}, val_images=tiny_images(16, seed=1),
      threads=1, log=log)
"""


def test_resume_after_kill_gives_the_same_weights(tmp_path):
    val = tiny_images(16, seed=1)
    whole = train(
        tiny_images(), DUAL, STOPPING, seed=5, out_dir=tmp_path / "whole", val_images=val, threads=1
    )
    assert 3 < len(whole) < STOPPING["epochs"]  # the rule is in play before and after the kill

    out = tmp_path / "killed"
    code = KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2

    train(tiny_images(), DUAL, STOPPING, seed=5, out_dir=out, val_images=val, threads=1)
    assert not (out / "checkpoint.pt").exists()
    assert json.loads((out / "run.json").read_text())["resumed_after_epoch"] == 2
    assert_same_weights(weights(tmp_path / "whole/model.pt"), weights(out / "model.pt"))
    pd.testing.assert_frame_equal(
        history_without_time(tmp_path / "whole/history.csv"),
        history_without_time(out / "history.csv"),
        check_exact=True,
    )


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"fingerprint": "not this run", "epoch": 2}, out / "checkpoint.pt")
    train(tiny_images(), DUAL, TRAINING, seed=5, out_dir=out, threads=1)
    assert json.loads((out / "run.json").read_text())["resumed_after_epoch"] == 0


def test_non_finite_loss_names_the_epoch_and_leaves_no_model(tmp_path):
    images = np.random.default_rng(0).random((32, 30, 30)).astype(np.float32)
    images[5, 3, 3] = np.nan
    config = {**DUAL, "likelihood": "gaussian"}
    with pytest.raises(TrainingError, match="non-finite loss in epoch 1"):
        train(images, config, TRAINING, seed=0, out_dir=tmp_path)
    assert not (tmp_path / "model.pt").exists()


def test_model_loads_with_weights_only(tmp_path):
    train(tiny_images(), {"type": "vae", "fg_channels": [8]}, TRAINING, seed=0, out_dir=tmp_path)
    model, config = load_trained(tmp_path / "model.pt")
    assert config["type"] == "vae" and not model.training
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert (state["height"], state["width"]) == (30, 30)
    x = torch.from_numpy(tiny_images(2)).float().unsqueeze(1)
    with torch.no_grad():
        assert model.decode({"z": model.encode(x)["z"][0]})["foreground"].shape == (2, 1, 30, 30)


TINY_CONFIG = {
    "image": {"height": 30, "width": 30},
    "cells": {"positions": [[2, 3], [12, 18], [22, 4]]},
    "scenarios": {"tiny": {"disks": [{"center": [22, 8], "diameter": 16}]}},
    "data": {"n_train": 40, "n_val": 20, "n_test": 20},
    "seeds": [0],
    "models": {
        "dual": {**DUAL, "pool_size": 15},
        "vae": {"type": "vae", "fg_channels": [8]},
    },
    "training": {"epochs": 2, "batch_size": 16, "device": "cpu"},
}


@pytest.mark.slow
def test_snakemake_trains_a_tiny_config(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    targets = [f"results/models/tiny/{m}/seed0/history.csv" for m in ("dual", "vae")]
    result = snakemake(tmp_path, *targets, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for model in ("dual", "vae"):
        out = tmp_path / f"results/models/tiny/{model}/seed0"
        assert sorted(p.name for p in out.iterdir()) == ["history.csv", "model.pt", "run.json"]
        assert len(pd.read_csv(out / "history.csv")) == 2
        assert json.loads((out / "run.json").read_text())["threads"] == 1
        log = (tmp_path / f"results/logs/train/tiny/{model}/seed0.log").read_text()
        assert "epoch 2/2" in log
    assert (tmp_path / "results/benchmarks/train/tiny/dual/seed0.tsv").exists()


def test_learning_rate_falls_linearly_over_the_last_epochs():
    config = {"learning_rate": 1e-3, "epochs": 20, "lr_decay_epochs": 4}
    rates = [learning_rate(config, epoch) for epoch in range(1, 21)]
    assert rates[:16] == [1e-3] * 16
    assert rates[16:] == pytest.approx([8e-4, 6e-4, 4e-4, 2e-4])
    assert learning_rate({**config, "lr_decay_epochs": 0}, 20) == 1e-3


def test_learning_rate_decays_after_the_stopping_rule_fires_but_never_past_the_bound():
    config = {"learning_rate": 1e-3, "epochs": 20, "lr_decay_epochs": 4}
    rates = [learning_rate(config, epoch, decay_start=7) for epoch in range(1, 11)]
    assert rates[:6] == [1e-3] * 6
    assert rates[6:] == pytest.approx([8e-4, 6e-4, 4e-4, 2e-4])
    assert learning_rate(config, 17, decay_start=19) == pytest.approx(8e-4)  # the bound wins


def rule_for(losses, **config):
    config = {"epochs": 30, "lr_decay_epochs": 3, "patience": 3, "min_improvement": 0.01, **config}
    rule = StoppingRule({"learning_rate": 1e-3, **config})
    for epoch, loss in enumerate(losses, start=1):
        rule.update(epoch, loss)
    return rule


def test_stopping_rule_fires_after_patience_epochs_without_a_relative_improvement():
    # 100, 90, 80 improve; 79.5 and 79.6 are within 1 % of 80; 70 improves again
    rule = rule_for([100, 90, 80, 79.5, 79.6, 70, 69.9, 69.8, 69.9])
    assert rule.decay_start == 10 and rule.last_epoch() == 12
    assert rule.best_epoch == 8  # the lowest loss, improvement or not
    still = rule_for([100, 90, 80, 79.5, 79.6, 70])
    assert still.decay_start is None and still.last_epoch() == 30
    # the same history replayed gives the same state (what a resumed run relies on)
    history = [{"epoch": e, "val_loss": v} for e, v in enumerate([100, 99.5, 99.4, 99.3], 1)]
    replayed = StoppingRule({"learning_rate": 1e-3, "epochs": 30, "lr_decay_epochs": 3,
                             "patience": 3, "min_improvement": 0.01}, history)  # fmt: skip
    assert replayed.decay_start == 5 and replayed.best_epoch == 4


def test_stopping_rule_does_not_count_a_models_warmup_epochs():
    rising = [100, 101, 102, 103, 104, 103, 102, 101, 101, 101]  # a loss weight rising to 5
    config = {"learning_rate": 1e-3, "epochs": 30, "lr_decay_epochs": 3, "patience": 3,
              "min_improvement": 0.01}  # fmt: skip
    without, warm = StoppingRule(config), StoppingRule(config, warmup=5)
    for epoch, loss in enumerate(rising, start=1):
        without.update(epoch, loss)
        warm.update(epoch, loss)
    assert without.decay_start == 5  # fired inside the rise
    assert warm.decay_start == 11  # counted from epoch 6 (7 improves on 5 by > 1 %)


def test_stopping_rule_off_is_the_fixed_schedule_and_negative_losses_work():
    fixed = rule_for([100] * 20, patience=0)
    assert fixed.decay_start is None and fixed.last_epoch() == 30
    negative = rule_for([-10, -20, -20.1, -20.15, -20.1])  # gaussian likelihoods go negative
    assert negative.decay_start == 6 and negative.best_epoch == 4


def test_training_stops_early_and_keeps_the_best_validation_epoch(tmp_path):
    val = tiny_images(16, seed=1)
    config = {**STOPPING, "epochs": 30}
    history = train(tiny_images(), DUAL, config, seed=0, out_dir=tmp_path, val_images=val)
    run = json.loads((tmp_path / "run.json").read_text())
    assert len(history) < 30 and run["stopped_early"] and run["epochs_trained"] == len(history)
    losses = [row["val_loss"] for row in history]
    assert run["best_epoch"] == 1 + losses.index(min(losses))
    lr = [row["lr"] for row in history]
    assert lr[-1] < lr[0] and lr[-1] == pytest.approx(lr[0] / (config["lr_decay_epochs"] + 1))
    model, _ = load_trained(tmp_path / "model.pt")
    # the saved weights are the best epoch's: the same validation loss, to float precision
    again = evaluate_loss(model, torch.from_numpy(val).unsqueeze(1), seed=0)["loss"]
    assert again == pytest.approx(min(losses), rel=1e-5)


def test_two_starts_keep_the_lower_validation_loss_and_equal_that_seeds_plain_run(tmp_path):
    val = tiny_images(16, seed=1)
    config = {**TRAINING, "epochs": 2, "starts": 2}
    history = train_starts(tiny_images(), DUAL, config, 5, tmp_path / "two", val, threads=1)
    run = json.loads((tmp_path / "two/run.json").read_text())
    assert [s["seed"] for s in run["starts"]] == [5, 1005]
    losses = [s["val_loss"] for s in run["starts"]]
    assert losses[0] != losses[1] and run["kept_start"] == losses.index(min(losses))
    assert run["epochs_trained_all_starts"] == 4 and len(history) == 2
    kept = run["starts"][run["kept_start"]]["seed"]
    train(tiny_images(), DUAL, config, kept, tmp_path / "plain", val, threads=1)
    assert_same_weights(weights(tmp_path / "two/model.pt"), weights(tmp_path / "plain/model.pt"))
    pd.testing.assert_frame_equal(
        history_without_time(tmp_path / "two/history.csv"),
        history_without_time(tmp_path / "plain/history.csv"),
        check_exact=True,
    )


@pytest.mark.parametrize("losses, kept", [([5.0, 3.0], 1), ([3.0, 5.0], 0), ([4.0, 4.0], 0)])
def test_starts_rule_keeps_the_lowest_validation_loss(tmp_path, monkeypatch, losses, kept):
    def fake_train(images, model_config, training_config, seed, out_dir, val_images, **kw):
        j = (seed - 7) // 1000
        out_dir.mkdir(parents=True)
        torch.manual_seed(j)  # each start its own weights
        save_model(build_model(DUAL, 12, 12), resolve_config(DUAL), out_dir / "model.pt")
        (out_dir / "history.csv").write_text(f"history of start {j}")
        row = {"epoch": 1, "val_loss": losses[j]}
        run = {"best_epoch": 1, "epochs_trained": 1, "wall_seconds": 1.0, "seed": seed}
        (out_dir / "run.json").write_text(json.dumps(run))
        return [row]

    monkeypatch.setattr("fgbg.training.train", fake_train)
    train_starts(np.zeros((2, 12, 12)), DUAL, {"starts": 2}, 7, tmp_path, val_images=np.zeros(1))
    kept_model = load_trained(tmp_path / "model.pt")[0].state_dict()
    for j in range(2):
        start_model = load_trained(tmp_path / f"start{j}" / "model.pt")[0].state_dict()
        same = all(torch.equal(kept_model[k], start_model[k]) for k in kept_model)
        assert same == (j == kept)
    assert (tmp_path / "history.csv").read_text() == f"history of start {kept}"
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["kept_start"] == kept and run["seed"] == 7 + 1000 * kept


def test_starts_without_validation_images_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="training.starts"):
        train_starts(tiny_images(), DUAL, {**TRAINING, "starts": 2}, 0, tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda(tmp_path):
    config = {**STOPPING, "device": "cuda", "epochs": 3}
    history = train(
        tiny_images(), DUAL, config, seed=0, out_dir=tmp_path, val_images=tiny_images(16, seed=1)
    )
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["device"].startswith("cuda") and len(history) >= 1
    assert all(math.isfinite(row["val_loss"]) for row in history)
    model, _ = load_trained(tmp_path / "model.pt")  # loads on the CPU
    assert next(model.parameters()).device.type == "cpu"


def test_truncated_model_file_is_one_line_naming_it(tmp_path):
    train(tiny_images(), {"type": "vae", "fg_channels": [8]}, TRAINING, seed=0, out_dir=tmp_path)
    path = tmp_path / "model.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(JobError) as caught:
        load_trained(path)
    message = str(caught.value)
    assert message.startswith(f"damaged model file {path} (unreadable: ")
    assert message.endswith(f"retrain it with: snakemake --cores 1 --forcerun {path}")
    assert "\n" not in message and "weights_only" not in message


def test_unreadable_checkpoint_is_ignored(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"half a checkpoint")
    train(tiny_images(), DUAL, TRAINING, seed=5, out_dir=out, threads=1)
    assert json.loads((out / "run.json").read_text())["resumed_after_epoch"] == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_unavailable_device_says_what_is_available(name):
    with pytest.raises(JobError, match=f"^training.device: {name} is not available on this "):
        resolve_device(name)
    assert available_devices()[0] == "cpu" and resolve_device("auto").type == "cpu"
