"""The tiny pipeline runs on a real one-node SLURM through `snakemake --profile slurm`.

Needs root and apt (CI has both; elsewhere the tests skip with the reason): the fixture
installs slurmctld/slurmd/munge when missing, starts them by hand
(tests/slurm/local_slurm.py) with fake GPUs, and stops them by PID at the end, restoring
/etc/slurm. The project profile is used unchanged (the test cluster gets the partitions it
names); a test profile adds only what a cluster without accounting needs (squeue for status
checks) and a short first status delay.

One SLURM run is interrupted while it trains, then resumed with the same command; the
result is compared with a local `--cores` run of the same config, and a copy of the
finished run is rerun with a training device that cannot exist, to see the failure
reported. Each DAG level costs about 12 s (the plugin's status polling), so the config is
one scenario, two models, one seed.
"""

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "slurm"))

from local_slurm import ClusterUnavailable, LocalSlurm  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

PROFILE = ROOT / "slurm"
TEST_PROFILE = {
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 1,
    "slurm-keep-successful-logs": True,
}
TINY_CONFIG = {
    "image": {"height": 30, "width": 30},
    "cells": {"size": 6, "positions": [[2, 2], [2, 20], [12, 12], [22, 2], [22, 22]]},
    "scenarios": {"tiny": {"disks": [{"center": [24, 6], "diameter": 20, "probability": 0.9}]}},
    "data": {"seed": 7, "n_train": 64, "n_val": 32, "n_test": 32, "chunk_size": 64},
    "seeds": [0],
    "models": {
        "dual": {
            "type": "dual",
            "pool_size": 30,
            "fg_channels": [4],
            "fg_hidden": 16,
            "bg_channels": 2,
            "bg_hidden": 8,
        },
        "vae": {"type": "vae", "fg_channels": [4], "fg_hidden": 16},
    },
    "training": {"epochs": 2, "batch_size": 32, "checkpoint_every": 1},
}
TRAIN_JOBS = sorted(
    f"train:scenario={scenario},model={model},seed={seed}"
    for scenario in TINY_CONFIG["scenarios"]
    for model in TINY_CONFIG["models"]
    for seed in TINY_CONFIG["seeds"]
)
MODEL_DIRS = [
    f"results/models/{scenario}/{model}/seed{seed}"
    for scenario in TINY_CONFIG["scenarios"]
    for model in TINY_CONFIG["models"]
    for seed in TINY_CONFIG["seeds"]
]
EVAL_TABLES = ["cells.csv", "rates.csv", "latent.csv"]
EVAL_DIRS = [d.replace("results/models/", "results/eval/") for d in MODEL_DIRS]
TARGETS = [f"{d}/model.pt" for d in MODEL_DIRS] + [
    f"{d}/{t}" for d in EVAL_DIRS for t in EVAL_TABLES
]
RUN_TIMEOUT = 300  # seconds; a hung run is stopped with SIGINT (SIGTERM may not stop it)


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def profile_partitions() -> list[str]:
    """The partitions the project profile names, the default one first."""
    prof = profile()
    names = [prof["default-resources"]["slurm_partition"]]
    names += [
        r["slurm_partition"] for r in prof["set-resources"].values() if "slurm_partition" in r
    ]
    return list(dict.fromkeys(names))


def make_workdir(path: Path, config: dict = TINY_CONFIG) -> Path:
    """A copy of the workflow with `config` as its config.yaml, plus the test profile."""
    path.mkdir(parents=True)
    shutil.copy(ROOT / "Snakefile", path)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "workflow", path / "workflow", ignore=ignore)
    shutil.copytree(ROOT / "envs", path / "envs")
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "test_profile").mkdir()
    (path / "test_profile" / "config.yaml").write_text(yaml.safe_dump(TEST_PROFILE))
    return path


def snakemake_cmd(*args: str, timeout: int = RUN_TIMEOUT) -> list[str]:
    return [
        "timeout",
        "--foreground",
        "-s",
        "INT",
        "-k",
        "20",
        str(timeout),
        sys.executable,
        "-m",
        "snakemake",
        *args,
    ]


def slurm_args() -> list[str]:
    return ["--profile", str(PROFILE), "--profile", "test_profile", "--verbose"]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


def start(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=clean_env())


def run(cmd: list[str], cwd: Path, log: Path) -> SimpleNamespace:
    t0 = time.monotonic()
    proc = start(cmd, cwd, log)
    try:
        rc = proc.wait()
    finally:
        stop(proc)  # only does something when interrupted
    return SimpleNamespace(rc=rc, seconds=time.monotonic() - t0, text=log.read_text())


def stop(proc: subprocess.Popen) -> None:
    """Interrupt a snakemake (via `timeout`, which forwards SIGINT) and make sure it ends."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# how the plugin names the training submissions (in --comment and the log folder)
TRAIN = r"(?:rule|group)_train(?![a-z])"


def sbatch_calls(text: str, rule: str = TRAIN) -> list[str]:
    """The sbatch command lines of a verbose snakemake log, for one rule or group."""
    return [
        line
        for line in text.splitlines()
        if line.startswith("sbatch call:") and re.search(rf"--comment '?{rule}", line)
    ]


def slurm_jobids(text: str, rule: str = TRAIN) -> list[str]:
    """SLURM job ids of a rule's or group's submissions (from their log paths), in order."""
    pattern = rf"submitted with SLURM jobid (\d+) \(log: \S*/{rule}"
    return [m.group(1) for m in re.finditer(pattern, text)]


def scontrol_job(jobid: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", jobid], capture_output=True, text=True, timeout=10
    ).stdout


def tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip(
            "SLURM test needs root (it installs packages, writes /etc/slurm, starts daemons)"
        )
    # SIGTERM/SIGHUP (a CI timeout, a closed terminal) would end pytest without teardown:
    # turn them into KeyboardInterrupt, so the daemons stop and /etc/slurm is restored.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig in handlers:
        signal.signal(sig, _interrupt)
    try:
        with LocalSlurm(profile_partitions(), log=lambda msg: None) as slurm:
            yield slurm
    except ClusterUnavailable as error:
        pytest.skip(f"SLURM test cluster unavailable: {error}")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """Interrupted SLURM run, its resumption, and (meanwhile) a local run of the same config."""
    base = tmp_path_factory.mktemp("slurm_runs")
    work = make_workdir(base / "slurm")
    local = make_workdir(base / "local")
    local_proc = start(snakemake_cmd("--cores", "2", *TARGETS), local, local / "run.log")
    interrupted = start(snakemake_cmd(*slurm_args(), *TARGETS), work, work / "run_a.log")
    try:
        # Interrupt once training is on the cluster (the data job has finished by then).
        deadline = time.monotonic() + 120
        while not slurm_jobids((work / "run_a.log").read_text()):
            assert interrupted.poll() is None, tail((work / "run_a.log").read_text())
            assert time.monotonic() < deadline, "training never submitted\n" + cluster.logs()
            time.sleep(0.5)
        time.sleep(2)
        t0 = time.monotonic()
        stop(interrupted)
        a = SimpleNamespace(
            rc=interrupted.returncode,
            stop_seconds=time.monotonic() - t0,
            text=(work / "run_a.log").read_text(),
            models_done=[d for d in MODEL_DIRS if (work / d / "model.pt").exists()],
        )
        b = run(snakemake_cmd(*slurm_args(), *TARGETS), work, work / "run_b.log")
        local_rc = local_proc.wait(timeout=RUN_TIMEOUT + 30)
    finally:
        stop(interrupted)
        stop(local_proc)
    return SimpleNamespace(
        work=work, local=local, a=a, b=b, local_rc=local_rc, local_log=(local / "run.log")
    )


def test_interrupted_run_resumes_with_the_same_command(runs):
    a, b = runs.a, runs.b
    assert a.rc != 0, "the interrupted run should not report success"
    assert a.stop_seconds < 30, f"SIGINT took {a.stop_seconds:.0f} s to stop snakemake"
    assert len(a.models_done) < len(MODEL_DIRS), "training finished before the interrupt"
    cancelled = slurm_jobids(a.text)[0]
    assert "JobState=CANCELLED" in scontrol_job(cancelled), scontrol_job(cancelled)
    assert b.rc == 0, tail(b.text)
    assert all((runs.work / t).exists() for t in TARGETS)
    # resumed, not restarted: the data job of the first run is kept
    assert not sbatch_calls(b.text, "rule_generate_data")
    assert sbatch_calls(b.text), "the resumed run submitted no training"


def test_every_training_job_went_through_slurm_with_a_gpu(runs, capsys):
    calls = sbatch_calls(runs.b.text)
    jobids = slurm_jobids(runs.b.text)
    prof = profile()
    gpu_partition = prof["set-resources"]["train"]["slurm_partition"]
    with capsys.disabled():
        print("\nSLURM submissions of the training jobs (resumed run):")
        for call in calls:
            flags = " ".join(re.findall(r"-p \S+|-t \S+|--mem \S+|--gpus=\S+", call))
            jobs = ", ".join(re.findall(r"'train:([^']+)'", call))
            print(f"  sbatch {flags} ... -> train {jobs}")
        print(f"  SLURM job ids: {jobids}")
    submitted = sorted(j for c in calls for j in re.findall(r"'(train:[^']+)'", c))
    assert submitted == TRAIN_JOBS
    # grouped: one SLURM job per group-components training jobs
    per_job = prof["group-components"]["train"]
    assert len(calls) == len(jobids) == math.ceil(len(TRAIN_JOBS) / per_job)
    for call in calls:
        assert " --gpus=1" in call, call
        assert f" -p {gpu_partition} " in call, call
    for jobid in jobids:
        record = scontrol_job(jobid)
        assert "JobState=COMPLETED" in record, record
        assert f"Partition={gpu_partition}" in record, record
        assert re.search(r"gres/gpu[:=]1|gres:gpu:1", record), record
    # nothing ran on the submit host
    assert "localrule train" not in runs.b.text
    # the evaluation went through SLURM too, on the CPU partition, without a GPU
    evaluation = sbatch_calls(runs.b.text, "(?:rule|group)_evaluate")
    assert evaluation
    cpu_partition = prof["default-resources"]["slurm_partition"]
    assert all(f" -p {cpu_partition} " in c and "--gpus" not in c for c in evaluation)


def _history(path: Path):
    import pandas as pd

    return pd.read_csv(path).drop(columns=["seconds"], errors="ignore")


def _same(x, y, where: str) -> None:
    import torch

    if isinstance(x, dict):
        assert isinstance(y, dict) and x.keys() == y.keys(), where
        for key in x:
            _same(x[key], y[key], f"{where}.{key}")
    elif isinstance(x, torch.Tensor):
        assert torch.equal(x, y), f"{where} differs"
    else:
        assert x == y, f"{where}: {x!r} != {y!r}"


def test_slurm_results_equal_a_local_run(runs):
    import torch

    from fgbg.store import open_split

    assert runs.local_rc == 0, tail(runs.local_log.read_text())
    for split in ("train", "val", "test"):
        path = f"results/data/tiny/seed0/{split}.zarr"
        on_slurm = open_split(runs.work / path)["images"].values
        local = open_split(runs.local / path)["images"].values
        assert (on_slurm == local).all(), path
    for d in MODEL_DIRS:
        assert _history(runs.work / d / "history.csv").equals(
            _history(runs.local / d / "history.csv")
        ), f"{d}/history.csv differs"
        on_slurm = torch.load(runs.work / d / "model.pt", weights_only=True)
        local = torch.load(runs.local / d / "model.pt", weights_only=True)
        _same(on_slurm, local, f"{d}/model.pt")
    for d in EVAL_DIRS:
        for table in EVAL_TABLES:
            on_slurm = (runs.work / d / table).read_bytes()
            assert on_slurm == (runs.local / d / table).read_bytes(), f"{d}/{table} differs"


def test_a_failing_job_is_reported_within_a_minute(runs, tmp_path):
    work = tmp_path / "failing"
    shutil.copytree(runs.work, work, symlinks=True)
    # every training job now fails on the node: no such CUDA device
    failed = run(
        snakemake_cmd(
            *slurm_args(), *TARGETS, "--config", "training={device: 'cuda:7'}", timeout=120
        ),
        work,
        work / "run_fail.log",
    )
    assert failed.rc not in (0, 124), tail(failed.text)
    # about a minute: startup, one submission and status polling; 90 s leaves room for a
    # loaded 2-core machine (a CI run measured 69 s once), well short of the 120 s timeout
    assert failed.seconds < 90, f"failure took {failed.seconds:.0f} s to be reported"
    assert re.search(r"Error in (group|rule) train", failed.text), tail(failed.text)
    jobids = slurm_jobids(failed.text)
    assert jobids, tail(failed.text)
    assert "JobState=FAILED" in scontrol_job(jobids[-1])
