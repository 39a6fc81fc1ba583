"""Benchmark (not a test): data generation throughput and peak memory.

Writes the x90 train split of the default config (60 x 60 images, `data.chunk_size`
images per chunk) to a temporary Zarr store, once per size, each in a fresh subprocess so
that its peak resident memory (ru_maxrss) is its own.

    python benchmarks/bench_data.py                 # 2,000 and 1,000,000 images
    python benchmarks/bench_data.py 2000 100000     # other sizes
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))


def child(n: int) -> dict:
    """Run in the subprocess: generate and write n images, report time and memory."""
    import yaml

    from fgbg.config import load_config, scenario_params
    from fgbg.store import write_split

    config = load_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
    params = scenario_params(config, "x90")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        path = Path(tmp) / "train.zarr"
        started = time.perf_counter()
        write_split(
            path,
            params,
            scenario="x90",
            split="train",
            seed=config["data"]["seed"],
            n=n,
            chunk_size=config["data"]["chunk_size"],
        )
        seconds = time.perf_counter() - started
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "images": n,
        "seconds": round(seconds, 2),
        "images_per_s": round(n / seconds),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_after_imports_mib": round(baseline / 1024, 1),
        "store_mib": round(size / 2**20, 1),
        "raw_mib": round(n * 60 * 60 / 2**20, 1),
        "chunk_size": config["data"]["chunk_size"],
    }


def main(sizes: list[int]) -> None:
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores visible, python {platform.python_version()}"
    )
    columns = [("images", 10), ("seconds", 8), ("images/s", 9), ("peak RSS", 10)]
    columns += [("after imports", 14), ("store", 9), ("raw", 9)]
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['images']:>10,} {r['seconds']:>8} {r['images_per_s']:>9,} "
            f"{r['peak_rss_mib']:>7} MiB {r['rss_after_imports_mib']:>10} MiB "
            f"{r['store_mib']:>5} MiB {r['raw_mib']:>5} MiB"
        )
        if n >= 1_000_000:
            assert r["peak_rss_mib"] < 1024, "peak memory must stay under 1 GiB"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(int(sys.argv[2]))))
    else:
        main([int(a) for a in sys.argv[1:]] or [2000, 1_000_000])
