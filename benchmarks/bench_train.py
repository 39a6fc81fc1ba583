"""Training speed of the project's loop against a straightforward reference loop.

Not a test. Prints, in one run on one machine and thread count:
  * the machine's fp32 matrix-multiply rate (GFLOP/s),
  * the model's training FLOPs per image (torch.utils.flop_counter, forward + backward),
  * for the project's loop (fgbg.training.train: uint8 data on the device, batches sliced from
    a seeded permutation, kernel == stride layers as reshape + matmul) and for a reference
    loop (DataLoader over a float TensorDataset, plain nn.Conv2d / nn.ConvTranspose2d layers,
    same model and loss): images/s, achieved GFLOP/s and the fraction of the matmul rate,
  * optionally (--parallel) one 2-thread job against two 1-thread jobs side by side.

    python benchmarks/bench_train.py [--model dual|vae|layered] [--batch-size 32] [--threads 1]
        [--device auto|cpu|cuda]

On whatever device it finds (`--device auto`, the default: CUDA when torch sees a GPU), so
that the first machine with a GPU gives its number in one command.
"""

from __future__ import annotations

import argparse
import copy
import logging
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from fgbg.layers import PatchConv2d, PatchConvTranspose2d  # noqa: E402
from fgbg.models import build_model  # noqa: E402
from fgbg.training import resolve_device, train  # noqa: E402


class Clock:
    """Wall and process CPU seconds of a block. On 2 shared cores the wall clock swings with
    the other processes' load; CPU seconds (what this process got) stay comparable."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, work: float) -> dict:
        """work per wall second and per CPU second of one thread's worth."""
        return {"wall": work / self.wall, "cpu": work / self.cpu}


def matmul_gflops(threads: int, device: str = "cpu", seconds: float = 2.0) -> dict:
    """Best fp32 rate of square matrix products (1024 on a CPU, 8192 on a GPU)."""
    torch.set_num_threads(threads)
    n = 1024 if device == "cpu" else 8192
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best = {"wall": 0.0, "cpu": 0.0}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        with Clock() as clock:
            for _ in range(5):
                a @ b
            sync()
        rates = clock.rates(5 * 2 * n**3 / 1e9)
        best = {k: max(best[k], rates[k]) for k in best}
    return best


def training_flops_per_image(model: nn.Module, height: int, width: int, batch: int) -> float:
    x = (torch.rand(batch, 1, height, width) > 0.7).float()
    with FlopCounterMode(display=False) as counter:
        model.loss_terms(x)["loss"].backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def reference_copy(model: nn.Module) -> nn.Module:
    """The same model with the patch layers as plain nn.Conv2d / nn.ConvTranspose2d."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, PatchConv2d | PatchConvTranspose2d):
            k = module.kernel_size
            if isinstance(module, PatchConv2d):
                out_c, in_c = module.weight.shape[:2]
                plain = nn.Conv2d(in_c, out_c, k, stride=k)
            else:
                in_c, out_c = module.weight.shape[:2]
                plain = nn.ConvTranspose2d(in_c, out_c, k, stride=k)
            plain.load_state_dict(module.state_dict())
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, plain)
    return model


def reference_loop(images, model_config, batch, epochs, device="cpu") -> dict:
    """A textbook loop; returns images/s (wall and CPU)."""
    torch.manual_seed(0)
    height, width = images.shape[1:]
    model = reference_copy(build_model(model_config, height, width)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = TensorDataset(torch.from_numpy(images).float().unsqueeze(1))
    loader = DataLoader(data, batch_size=batch, shuffle=True)
    with Clock() as clock:
        for _ in range(epochs):
            for (x,) in loader:
                loss = model.loss_terms(x.to(device))["loss"]
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        if device != "cpu":
            torch.cuda.synchronize()
    return clock.rates(len(images) * epochs)


def project_loop(images, model_config, batch, epochs, threads, device="cpu") -> dict:
    """fgbg.training.train (set-up and writing the outputs included); returns images/s."""
    with tempfile.TemporaryDirectory() as out, Clock() as clock:
        train(
            images,
            model_config,
            {"epochs": epochs, "batch_size": batch, "device": device, "checkpoint_every": 10**6},
            seed=0,
            out_dir=out,
            threads=threads,
            log=logging.getLogger("quiet"),
        )
    return clock.rates(len(images) * epochs)


def _side_by_side_job(barrier, results, job):
    """One of two processes: set up, wait for the other, then train (for --parallel)."""
    images, model_config, batch, epochs, threads = job
    project_loop(images[:batch], model_config, batch, 1, threads)  # warm up
    barrier.wait()
    results.put(project_loop(images, model_config, batch, epochs, threads)["wall"])


def side_by_side(job, copies: int) -> float:
    """Total images/s of `copies` training processes started together (spawned, warmed up)."""
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(copies), context.Queue()
    workers = [
        context.Process(target=_side_by_side_job, args=(barrier, results, job))
        for _ in range(copies)
    ]
    for worker in workers:
        worker.start()
    rates = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return sum(rates)


def load_images(path: str | None, n: int) -> tuple[np.ndarray, str]:
    if path and Path(path).exists():
        from fgbg.store import open_split

        return open_split(path)["images"].values[:n], path
    rng = np.random.default_rng(0)
    return (rng.random((n, 60, 60)) < 0.2).astype(np.uint8), "random 60 x 60 binary images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="results/data/x90/seed0/train.zarr")
    parser.add_argument("--n", type=int, default=2000, help="training images")
    parser.add_argument("--model", default="dual", choices=["dual", "vae", "layered"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--parallel", action="store_true", help="also 1 x 2 vs 2 x 1 threads")
    args = parser.parse_args()
    args.device = str(resolve_device(args.device))

    images, source = load_images(args.data, args.n)
    model_config = {"type": args.model}
    height, width = images.shape[1:]
    torch.set_num_threads(args.threads)
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "no GPU"
    print(f"machine: {platform.processor() or platform.machine()}, {gpu}, device {args.device}, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"data: {len(images)} images from {source}; model {args.model}; batch {args.batch_size}")
    print(f"threads: {args.threads} (of {torch.get_num_threads()} set, {mp.cpu_count()} cpus)")

    flops = training_flops_per_image(
        build_model(model_config, height, width), height, width, args.batch_size
    )
    print(f"training FLOPs/image: {flops / 1e6:.2f} MFLOP (forward + backward)")

    loops = {
        "project": lambda: project_loop(
            images, model_config, args.batch_size, args.epochs, args.threads, args.device
        ),
        "reference": lambda: reference_loop(
            images, model_config, args.batch_size, args.epochs, args.device
        ),
    }
    # matmul, project, reference, twice: each loop is compared with the matmul rate measured
    # just before it, and the best of two rounds is kept (load from other processes varies)
    best = {}
    for _ in range(2):
        for name, loop in loops.items():
            rate = matmul_gflops(args.threads, args.device, seconds=1.0)
            torch.set_num_threads(args.threads)
            ips = loop()
            for clock in ("wall", "cpu"):
                gflops = ips[clock] * flops / 1e9
                row = (ips[clock], gflops, rate[clock], gflops / rate[clock])
                if row[3] > best.get((name, clock), (0, 0, 0, 0))[3]:
                    best[name, clock] = row
    print(f"{'loop':<10} {'clock':<5} {'images/s':>9} {'GFLOP/s':>8} {'matmul':>7} {'fraction':>8}")
    for (name, clock), (ips, gflops, rate, fraction) in best.items():
        print(f"{name:<10} {clock:<5} {ips:9.0f} {gflops:8.1f} {rate:7.1f} {fraction:8.0%}")
    for clock in ("wall", "cpu"):
        ratio = best["project", clock][0] / best["reference", clock][0]
        print(f"project / reference ({clock}): {ratio:.2f}x")
    print("(cpu: per second of CPU time this process got; rates are per thread-second x threads)")

    if args.parallel:
        job = (images, model_config, args.batch_size, args.epochs)
        one = side_by_side((*job, 2), 1)
        two = side_by_side((*job, 1), 2)
        print(f"1 job x 2 threads: {one:7.0f} images/s")
        print(f"2 jobs x 1 thread: {two:7.0f} images/s in total ({two / one:.2f}x)")


if __name__ == "__main__":
    main()
