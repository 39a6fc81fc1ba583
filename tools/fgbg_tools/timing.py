"""Where a run's time goes: per rule and per trained model family, from the files the run
wrote (Snakemake's `benchmark:` TSVs and each training job's run.json).

    python -m fgbg_tools.timing [results/]

prints two markdown tables: per rule, the number of jobs, their summed wall and CPU seconds
and the mean wall seconds of a job; per model, the training jobs' epochs (min-max), CPU
seconds per job (mean, min-max) and CPU seconds per epoch. Wall seconds summed over jobs
exceed the run's own wall time when jobs run side by side.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fgbg_tools.runs import markdown_table, runs


def rule_times(results) -> pd.DataFrame:
    """One row per rule with benchmark files: jobs, wall_s, cpu_s (sums), mean_wall_s."""
    rows = []
    root = Path(results, "benchmarks")
    for path in sorted(root.rglob("*.tsv")):
        parts = path.relative_to(root).parts  # {rule}/.../{job}.tsv or {rule}.tsv
        rule = parts[0] if len(parts) > 1 else path.stem
        bench = pd.read_csv(path, sep="\t")
        rows.append(
            {"rule": rule, "wall_s": bench["s"].iloc[-1], "cpu_s": bench["cpu_time"].iloc[-1]}
        )
    frame = pd.DataFrame(rows, columns=["rule", "wall_s", "cpu_s"])
    table = frame.groupby("rule", sort=False).agg(
        jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum")
    )
    table["mean_wall_s"] = table["wall_s"] / table["jobs"]
    return table.sort_values("wall_s", ascending=False).reset_index()


def training_times(results) -> pd.DataFrame:
    """One row per model name: runs, epochs trained (min, max; the kept start's), CPU s
    per job from its benchmark (mean, min, max) and per epoch (over every start's epochs),
    and the wall seconds of the training function itself (run.json; no start-up)."""
    rows = []
    for trained in runs(results, "models", "run.json"):
        model = trained.model
        run = json.loads((trained.path / "run.json").read_text())
        bench = trained.benchmark(results, "train")
        cpu = pd.read_csv(bench, sep="\t")["cpu_time"].iloc[-1] if bench.exists() else float("nan")
        epochs = run.get("epochs_trained", run["training"]["epochs"])
        rows.append(
            {"model": model, "epochs": epochs, "cpu_s": cpu, "train_s": run["wall_seconds"],
             "all_epochs": run.get("epochs_trained_all_starts", epochs)}
        )  # fmt: skip
    frame = pd.DataFrame(rows, columns=["model", "epochs", "cpu_s", "train_s", "all_epochs"])
    frame["cpu_s_per_epoch"] = frame["cpu_s"] / frame["all_epochs"]
    return (
        frame.groupby("model", sort=False)
        .agg(
            runs=("epochs", "size"),
            epochs_min=("epochs", "min"),
            epochs_max=("epochs", "max"),
            cpu_s=("cpu_s", "mean"),
            cpu_s_min=("cpu_s", "min"),
            cpu_s_max=("cpu_s", "max"),
            cpu_s_per_epoch=("cpu_s_per_epoch", "mean"),
            train_wall_s=("train_s", "mean"),
        )
        .reset_index()
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", default="results")
    args = parser.parse_args(argv)
    print(markdown_table(rule_times(args.results).round(1)))
    print()
    print(markdown_table(training_times(args.results).round(2)))


if __name__ == "__main__":
    main()
