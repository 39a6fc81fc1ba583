"""Per-run table of a study: a run of the workflow on the validation split
(`evaluation: {split: val}`) with several seeds and one model entry per setting.

    python -m fgbg.study RESULTS [--models a,b] [--markdown]

One row per (scenario, model, seed): the epochs trained, the best validation loss, the
background KL at the best epoch (for layered models: near 0 means a collapsed background),
the expected foreground pixels on validation images, the targets' metrics (fgbg.targets) and
whether the run meets every target; then per (scenario, model) the runs passing, k of n.
Every choice of a default is read from such a table, never from the test split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fgbg.readme_results import markdown_table, per_run
from fgbg.targets import ALL, PASS, TARGETS, format_count, pass_counts, run_verdicts


def long_table(results, models=None) -> pd.DataFrame:
    """Per-run values (scenario, model, seed, stratum, metric, value) of the evaluated runs
    (fgbg.readme_results.per_run), cut to `models`."""
    long = per_run(Path(results))
    return long if models is None else long[long["model"].isin(models)]


def training_facts(results, scenario, model, seed) -> dict:
    """Epochs, best validation loss and the layered model's diagnostics at the best epoch."""
    run_dir = Path(results, "models", scenario, model, f"seed{seed}")
    if not (run_dir / "history.csv").exists():
        return {}
    history = pd.read_csv(run_dir / "history.csv")
    run = json.loads((run_dir / "run.json").read_text())
    best = history.loc[history["val_loss"].idxmin()]
    facts = {
        "epochs": len(history),
        "best_epoch": run.get("best_epoch"),
        "val_loss": best["val_loss"],
    }
    for column in ("val_kl_bg", "val_fg_pixels"):
        if column in history:
            facts[column[4:]] = best[column]
    return facts


def history_table(results, models=None) -> pd.DataFrame:
    """Every trained run's training facts (also runs that were never evaluated): epochs,
    best validation loss, background KL and expected foreground pixels at the best epoch."""
    rows = []
    for run_json in sorted(Path(results).glob("models/*/*/seed*/run.json")):
        scenario, model, seed = run_json.parts[-4:-1]
        if models is None or model in models:
            facts = training_facts(results, scenario, model, seed[4:])
            rows.append({"scenario": scenario, "model": model, "seed": int(seed[4:]), **facts})
    return pd.DataFrame(rows)


def run_table(results, models=None) -> pd.DataFrame:
    long = long_table(results, models)
    verdicts = run_verdicts(long)
    rows = []
    for (scenario, model, seed), group in verdicts.groupby(
        ["scenario", "model", "seed"], sort=False
    ):
        row = {"scenario": scenario, "model": model, "seed": seed}
        row |= training_facts(results, scenario, model, seed)
        for target in TARGETS:
            value = group.loc[group["target"] == target.label, "value"]
            row[f"{target.metric} {target.stratum}"] = value.iloc[0] if len(value) else None
        row["passes"] = group.loc[group["target"] == ALL, "verdict"].iloc[0] == PASS
        rows.append(row)
    return pd.DataFrame(rows)


def count_table(results, models=None) -> pd.DataFrame:
    counts = pass_counts(long_table(results, models))
    counts = counts[counts["target"] == ALL]
    return pd.DataFrame(
        {
            "scenario": counts["scenario"],
            "model": counts["model"],
            "runs passing": [
                format_count(c.k, c.n, c.ci95_low, c.ci95_high, c.not_judged)
                for c in counts.itertuples()
            ],
        }
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--markdown", action="store_true", help="markdown tables")
    parser.add_argument(
        "--histories", action="store_true", help="training facts of every trained run only"
    )
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else None
    if args.histories:
        print(markdown_table(history_table(args.results, models).round(2)))
        return
    runs, counts = run_table(args.results, models).round(3), count_table(args.results, models)
    if args.markdown:
        print(markdown_table(runs) + "\n\n" + markdown_table(counts))
        return
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(runs.to_string(index=False))
        print()
        print(counts.to_string(index=False))


if __name__ == "__main__":
    main()
