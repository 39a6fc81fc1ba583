"""Measure what job grouping saves: K tiny training jobs on the test cluster, ungrouped
(`--group-components train=1`: one SLURM job each) and grouped (the profile's setting).

Run as root: `python tests/slurm/measure_grouping.py [K [REPEATS]]` (defaults 10 and 1).
Prints, per mode and repeat (the modes alternate), the sbatch submissions, the wall time of
the training stage and the GPU allocation summed over the SLURM jobs (the data are
generated beforehand, locally, and are not timed).
"""

import copy
import itertools
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from local_slurm import LocalSlurm  # noqa: E402
from test_slurm import (  # noqa: E402
    TINY_CONFIG,
    make_workdir,
    profile,
    profile_partitions,
    run,
    sbatch_calls,
    slurm_args,
    slurm_jobids,
    snakemake_cmd,
)


def _elapsed_seconds(jobid: str) -> int:
    """Run time of a finished SLURM job (it stays in squeue for MinJobAge)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", jobid, "-o", "%M"], capture_output=True, text=True
    ).stdout.strip()
    seconds = 0
    for part in out.replace("-", ":").split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def main(k: int, repeats: int) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["seeds"] = list(range(math.ceil(k / len(config["models"]))))
    targets = [
        f"results/models/tiny/{model}/seed{seed}/model.pt"
        for model in config["models"]
        for seed in config["seeds"]
    ]
    base = Path("/tmp/fgbg-grouping")
    shutil.rmtree(base, ignore_errors=True)
    data = make_workdir(base / "data", config)
    done = run(
        snakemake_cmd("--cores", "2", "results/data/tiny/seed0/train.zarr"), data, data / "log"
    )
    assert done.rc == 0, done.text[-3000:]
    per_job = profile()["group-components"]["train"]
    modes = {"ungrouped": ["--group-components", "train=1"], "grouped": []}
    with LocalSlurm(profile_partitions()):
        for repeat, (mode, extra) in itertools.product(range(repeats), modes.items()):
            work = base / f"{mode}{repeat}"
            shutil.copytree(data, work, symlinks=True)
            result = run(snakemake_cmd(*slurm_args(), *targets, *extra), work, work / "run.log")
            assert result.rc == 0, result.text[-3000:]
            calls = sbatch_calls(result.text)
            ids = slurm_jobids(result.text)
            assert len(ids) == len(calls), (ids, calls)
            gpu_seconds = sum(_elapsed_seconds(i) for i in ids)
            print(
                f"{mode:10s} {len(targets)} training jobs: {len(calls)} sbatch submissions, "
                f"training stage {result.seconds:.0f} s wall, {gpu_seconds} s of GPU allocation"
                + ("" if extra else f" (group-components train={per_job})"),
                flush=True,
            )
            time.sleep(1)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args, *(10, 1)[len(args) :])
