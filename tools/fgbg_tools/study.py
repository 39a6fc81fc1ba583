"""Per-run table of a study: a run of the workflow on the validation split
(`evaluation: {split: val}`) with several seeds and one model entry per setting.

    python -m fgbg_tools.study RESULTS [--models a,b] [--markdown]
    python -m fgbg_tools.study RESULTS --replay 3:0.01,5:0.005 [--models a,b]
    python -m fgbg_tools.study RESULTS --starts a,a_r1 [--models a,a_r1] [--markdown]
    python -m fgbg_tools.study RESULTS --histories

One row per (scenario, model, seed): the epochs trained, the best validation loss, the
background KL at the best epoch (for layered models: near 0 means a collapsed background),
the expected foreground pixels on validation images, the targets' metrics (fgbg.targets) and
whether the run meets every target; then per (scenario, model) the runs passing, k of n.
Every choice of a default is read from such a table, never from the test split.

`--replay` reads the runs trained on the fixed schedule (`patience: 0`) and replays stopping
rules (patience:min_improvement) over their validation losses: where each rule would have
started the decay, and how far the best validation loss up to there lies above the fixed
schedule's best (the decay's own gain left out, so the gap is an upper bound).

`--starts` replays `training.starts` on entries trained as separate restarts: NAME_best_of_K
is, per run, the entry whose kept epoch has the lowest validation loss.

The label-using diagnostics of layered runs that earlier studies used (`--moved`,
`--filled`, `--inference`) are in the v0.2.0 release; docs/studies/ says how to rerun them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fgbg.targets import (
    ALL,
    CEILING,
    PASS,
    TARGETS,
    format_count,
    pass_counts,
    run_verdicts,
)
from fgbg.training import StoppingRule
from fgbg_tools.results_pages import per_run
from fgbg_tools.runs import markdown_table, run_dir, runs


def long_table(results, models=None, starts=None) -> pd.DataFrame:
    """Per-run values (scenario, model, seed, stratum, metric, value) of the evaluated runs
    (fgbg_tools.results_pages.per_run), cut to `models` and the ceiling (CEILING, which the
    relative targets read); with `starts`, plus those of `kept_name(starts)`."""
    long = per_run(Path(results))
    if starts:
        kept = kept_starts(results, starts)
        chosen = long.merge(kept, on=["scenario", "seed", "model"]).sort_values(
            ["scenario", "seed"], kind="stable"
        )
        long = pd.concat([long, chosen.assign(model=kept_name(starts)).drop(columns="val_loss")])
    return long if models is None else long[long["model"].isin([*models, CEILING])]


def kept_name(starts) -> str:
    return f"{starts[0]}_best_of_{len(starts)}"


def kept_starts(results, starts) -> pd.DataFrame:
    """The rule of `training.starts`, replayed on model entries that are one setting from
    different initialisations (`training.restart`): per (scenario, seed), the entry whose
    kept epoch has the lowest validation loss (scenario, seed, model, val_loss)."""
    runs = history_table(results, starts)
    runs = runs[runs["model"].isin(starts)].dropna(subset=["val_loss"])
    complete = runs.groupby(["scenario", "seed"])["model"].transform("size") == len(starts)
    best = runs[complete].sort_values("val_loss", kind="stable").groupby(["scenario", "seed"])
    kept = best.head(1).sort_values(["scenario", "seed"])
    return kept[["scenario", "seed", "model", "val_loss"]].reset_index(drop=True)


def training_facts(results, scenario, model, seed) -> dict:
    """Epochs, best validation loss and the layered model's diagnostics at the best epoch."""
    folder = run_dir(results, "models", scenario, model, seed)
    if not (folder / "history.csv").exists():
        return {}
    history = pd.read_csv(folder / "history.csv")
    run = json.loads((folder / "run.json").read_text())
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
    for trained in runs(results, "models", "run.json"):
        if models is None or trained.model in models:
            facts = training_facts(results, trained.scenario, trained.model, trained.seed)
            rows.append(
                {"scenario": trained.scenario, "model": trained.model, "seed": trained.seed,
                 **facts}
            )  # fmt: skip
    return pd.DataFrame(rows)


def replay_rules(results, rules, models=None) -> pd.DataFrame:
    """Per (model, rule) over the fixed-schedule runs: the epoch the rule's decay would end
    (its cost), and the gap between the best validation loss up to the decay's start and
    the fixed schedule's best, in % (mean and worst run)."""
    rows = []
    for trained in runs(results, "models", "run.json"):
        run = json.loads((trained.path / "run.json").read_text())
        model = trained.model
        if run["training"].get("patience") or (models is not None and model not in models):
            continue
        losses = pd.read_csv(trained.path / "history.csv")["val_loss"].tolist()
        for patience, min_improvement in rules:
            config = {**run["training"], "patience": patience, "min_improvement": min_improvement}
            rule = StoppingRule(config)
            for epoch, loss in enumerate(losses, start=1):
                rule.update(epoch, loss)
                if rule.decay_start is not None:
                    break
            reached = min(losses[: rule.decay_start or len(losses)])
            rows.append(
                {
                    "model": model,
                    "rule": f"patience {patience}, {min_improvement:g}",
                    "epochs": min(rule.last_epoch(), len(losses)),
                    "gap_pct": 100 * (reached - min(losses)) / abs(min(losses)),
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return (
        frame.groupby(["model", "rule"], sort=False)
        .agg(
            runs=("epochs", "size"),
            epochs_median=("epochs", "median"),
            epochs_max=("epochs", "max"),
            gap_pct_mean=("gap_pct", "mean"),
            gap_pct_max=("gap_pct", "max"),
        )
        .reset_index()
        .round(2)
    )


def run_table(results, models=None, starts=None) -> pd.DataFrame:
    long = long_table(results, models, starts)
    verdicts = run_verdicts(long)
    kept = {} if not starts else {
        (r.scenario, r.seed): r.model for r in kept_starts(results, starts).itertuples()
    }  # fmt: skip
    rows = []
    for (scenario, model, seed), group in verdicts.groupby(
        ["scenario", "model", "seed"], sort=False
    ):
        row = {"scenario": scenario, "model": model, "seed": seed}
        source = kept[scenario, seed] if starts and model == kept_name(starts) else model
        row |= training_facts(results, scenario, source, seed)
        for target in TARGETS:
            value = group.loc[group["target"] == target.label, "value"]
            row[f"{target.metric} {target.stratum}"] = value.iloc[0] if len(value) else None
        row["passes"] = group.loc[group["target"] == ALL, "verdict"].iloc[0] == PASS
        rows.append(row)
    return pd.DataFrame(rows)


def count_table(results, models=None, starts=None) -> pd.DataFrame:
    return _counts(long_table(results, models, starts))


def _counts(long: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, model): the runs meeting every target, k of n with the interval."""
    counts = pass_counts(long)
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
    parser.add_argument(
        "--replay", help="stopping rules to replay on fixed-schedule runs: PATIENCE:MIN,..."
    )
    parser.add_argument(
        "--starts",
        help="model entries that are one setting from other initialisations (training.restart"
        " 0, 1, ...): adds NAME_best_of_K, the entry with the lowest validation loss per run",
    )
    args = parser.parse_args(argv)
    starts = args.starts.split(",") if args.starts else None
    models = args.models.split(",") if args.models else None
    if models and starts:
        models.append(kept_name(starts))
    if args.replay:
        rules = [(int(p), float(m)) for p, m in (r.split(":") for r in args.replay.split(","))]
        print(markdown_table(replay_rules(args.results, rules, models)))
        return
    if args.histories:
        print(markdown_table(history_table(args.results, models).round(2)))
        return
    runs = run_table(args.results, models, starts).round(3)
    counts = count_table(args.results, models, starts)
    if args.markdown:
        print(markdown_table(runs) + "\n\n" + markdown_table(counts))
        return
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(runs.to_string(index=False))
        print()
        print(counts.to_string(index=False))


if __name__ == "__main__":
    main()
