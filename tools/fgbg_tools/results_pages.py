"""Write the Results tables (markdown) of docs/results.md and README.md from a finished run.

    python -m fgbg_tools.results_pages [results/] [--compare A:B ...] [--targets MODEL]
                                         [--write docs/results.md README.md]

Without --write the tables are printed. With it, every block of each page between
`<!-- generated: NAME [models=A,B] [rows=STRATUM/METRIC,...] -->` and
`<!-- end generated -->` is replaced by the table NAME (headline, findings, comparisons,
pass_counts, targets, knowledge, convergence, epochs, schedule, rule_times,
training_times), optionally cut to some models and (stratum, metric) rows; the text around
the blocks is left as it is.

Reads results/summary_wide.csv, results/findings.csv and the per-run rates.csv and
separation.csv under results/eval/. The comparisons are generated, never typed: each row
compares two methods on one quantity in one scenario with the paired 95 % interval of the
per-seed differences (the two methods of a seed share its data replicate), and says
"higher" or "lower" only when that interval excludes 0 (the findings' rule, without margin);
otherwise "not resolved", and "no verdict" for a zero-width interval or a saturated measure.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import pandas as pd

from fgbg.findings import Sample, paired
from fgbg.references import KNOWS
from fgbg.summary import PASS_STRATUM, format_pass, read_runs
from fgbg.targets import CEILING, TARGETS, Target
from fgbg_tools import timing
from fgbg_tools.runs import markdown_table, runs

HEADLINE = (
    ("outside", "auroc"),
    ("inside_bg_off", "auroc"),
    ("inside_bg_off_novel", "auroc"),
    ("inside_bg_on", "auroc"),
    ("inside_bg_on", "tpr"),
    ("inside_bg_on", "fpr"),
    ("inside_bg_on", "log_loss_excess"),
    ("active_disks", "leakage"),
    ("active_disks", "leakage_ratio"),
    ("inside_active_disks", "pixel_ap"),
)
# (stratum, metric, "higher is better")
COMPARED = (
    ("inside_bg_on", "auroc", True),
    ("inside_bg_on", "fpr", False),
    ("active_disks", "leakage", False),
    ("active_disks", "leakage_ratio", False),
    ("outside", "auroc", True),
    ("inside_bg_off", "auroc", True),
)


def headline(wide: pd.DataFrame) -> pd.DataFrame:
    """The headline quantities per method, scenarios as columns, in HEADLINE order."""
    keyed = wide.set_index(["stratum", "metric"])
    frames = []
    for key in HEADLINE:
        if key in keyed.index:
            frames.append(keyed.loc[[key]].reset_index())
    table = pd.concat(frames) if frames else wide.iloc[:0]
    order = {m: i for i, m in enumerate(dict.fromkeys(wide["model"]))}
    table = table.sort_values("model", key=lambda c: c.map(order), kind="stable")
    return table[wide.columns].reset_index(drop=True)


def per_run(results: Path) -> pd.DataFrame:
    """Long table (scenario, model, seed, stratum, metric, value) of every run's rates.csv
    and separation.csv."""
    evaluated = runs(results, "eval", "rates.csv")
    rates = read_runs([(r.scenario, r.model, r.seed, r.path / "rates.csv") for r in evaluated])
    separation = read_runs(
        [(r.scenario, r.model, r.seed, r.path / "separation.csv") for r in evaluated]
    )
    return long_values(rates, separation)


def long_values(rates: pd.DataFrame, separation: pd.DataFrame) -> pd.DataFrame:
    """Rates and separation tables with scenario, model and seed columns, as one long table
    (scenario, model, seed, stratum, metric, value): a separation region is a stratum."""
    keys = ["scenario", "model", "seed", "stratum"]
    separation = separation.rename(columns={"region": "stratum"})[[*keys, "metric", "value"]]
    return pd.concat([rates.melt(id_vars=keys, var_name="metric"), separation], ignore_index=True)


def sample(runs: pd.DataFrame, scenario, model, stratum, metric) -> Sample:
    rows = runs[
        (runs["scenario"] == scenario)
        & (runs["model"] == model)
        & (runs["stratum"] == stratum)
        & (runs["metric"] == metric)
    ]
    values = rows.set_index("seed")["value"].astype(float).dropna()
    return Sample(f"{scenario} {model} {metric}({stratum})", values)


def comparison(runs: pd.DataFrame, scenario: str, a: str, b: str, stratum, metric, up) -> dict:
    """One row: a against b on one quantity in one scenario, from the paired interval."""
    first, second = (sample(runs, scenario, m, stratum, metric) for m in (a, b))
    part = paired(first, second, ">", 0.0)
    row = {"scenario": scenario, "quantity": f"{metric} `{stratum}`", "a vs b": f"{a} vs {b}"}
    if part.verdict == "inconclusive" and part.reason:
        return {**row, "a - b [95 % CI] (n)": "", "verdict": f"no verdict ({part.reason})"}
    diff = f"{part.mean:+.3f} [{part.low:+.3f}, {part.high:+.3f}] ({part.n})"
    if part.verdict == "inconclusive":
        return {**row, "a - b [95 % CI] (n)": diff, "verdict": "not resolved (CI contains 0)"}
    higher = part.verdict == "supported"
    better = "better" if higher == up else "worse"
    word = f"{a} {'higher' if higher else 'lower'} ({better})"
    return {**row, "a - b [95 % CI] (n)": diff, "verdict": word}


def comparisons(runs: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    scenarios = list(dict.fromkeys(runs["scenario"]))
    rows = [
        comparison(runs, scenario, a, b, stratum, metric, up)
        for a, b in pairs
        for scenario in scenarios
        for stratum, metric, up in COMPARED
    ]
    return pd.DataFrame(rows)


def _verdict(target: Target, bound: float, mean: float, low: float, high: float, n) -> str:
    """The verdict against `bound` (the target's, at the ceiling's mean for a relative one):
    "met" when the whole interval is on the target's side, "missed by D" when the mean is
    on the wrong side (D = its distance to the bound), "mean met, CI crosses" otherwise;
    "no data" without a value or a bound and "one run" (with the run's side) without an
    interval."""
    if pd.isna(mean) or pd.isna(bound):
        return "no data"
    sign = 1 if target.side == ">=" else -1
    if sign * (mean - bound) < 0:
        missed = f"missed by {abs(mean - bound):.3f}"
        return f"one run, {missed}" if pd.isna(low) or n == 1 else missed
    if pd.isna(low) or n == 1:
        return "one run, met"
    worst = low if sign == 1 else high
    return "met" if sign * (worst - bound) >= 0 else "mean met, CI crosses"


def _number(mean: float, low: float, high: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.3f}" if pd.isna(low) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def targets(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    """Each target (fgbg.targets.TARGETS) per scenario: the bound (a relative one at the
    ceiling's mean over the scenario's runs), the mean [95 % CI] over seeds (for every disk's
    own leakage, the worst disk's), its verdict (`_verdict`) and, where summary.csv has the
    pass counts, the runs that meet it ("k of n [exact 95 % CI]"): the runs decide, the mean
    only describes them."""
    rows = []
    keyed = summary.set_index(["model", "scenario", "stratum", "metric"]).sort_index()
    for scenario in dict.fromkeys(summary["scenario"]):
        for target in TARGETS:
            r = _target_row(keyed, model, scenario, target)
            if r is None:
                continue
            ceiling = _target_row(keyed, CEILING, scenario, target)
            at_ceiling = ceiling["mean"] if ceiling is not None else math.nan
            bound = target.bound_for(at_ceiling)
            stats = (r["mean"], r["ci95_low"], r["ci95_high"])
            row = {
                "scenario": scenario,
                "target": target.label,
                "bound": "" if pd.isna(bound) else f"{bound:.3f}",
                "mean [95 % CI]": _number(*stats),
                "verdict": _verdict(target, bound, *stats, r.get("n_seeds", math.nan)),
            }
            passing = (model, scenario, PASS_STRATUM, f"pass_{target.metric}_{target.stratum}")
            if passing in keyed.index:
                p = keyed.loc[passing]
                row["runs passing"] = format_pass(
                    p["mean"], p["n_seeds"], p["ci95_low"], p["ci95_high"]
                )
            rows.append(row)
    return pd.DataFrame(rows)


def _target_row(keyed: pd.DataFrame, model: str, scenario: str, target: Target):
    """The summary row of `target`'s measure for a model and scenario (for every disk's own
    leakage the worst disk's), or None."""
    try:
        mine = keyed.loc[(model, scenario)]
    except KeyError:
        return None
    keys = target.keys(mine.index)
    if not keys:
        return None
    measured = [key for key in keys if pd.notna(mine.loc[key, "mean"])] or keys
    return mine.loc[target.worst(measured, lambda key: mine.loc[key, "mean"])]


def pass_count_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Runs meeting every target (fgbg.targets), "k of n [exact 95 % CI]", one row per
    method, one column per scenario; ", m not judged" when m runs lacked a target's value
    (a scenario without disks has nothing inside an active disk to judge)."""
    rows = summary[summary["stratum"] == PASS_STRATUM]
    if rows.empty:
        return pd.DataFrame(columns=["model"])
    keyed = rows.set_index(["scenario", "model", "metric"])
    scenarios = list(dict.fromkeys(rows["scenario"]))
    out = []
    for model in dict.fromkeys(rows["model"]):
        line = {"model": model}
        for scenario in scenarios:
            if (scenario, model, "runs_passing") not in keyed.index:
                line[scenario] = ""
                continue
            p = keyed.loc[(scenario, model, "runs_passing")]
            cell = format_pass(p["mean"], p["n_seeds"], p["ci95_low"], p["ci95_high"])
            if (scenario, model, "runs_not_judged") in keyed.index:
                q = keyed.loc[(scenario, model, "runs_not_judged")]
                unjudged = round(q["mean"] * q["n_seeds"])
                cell += f", {unjudged} not judged" if unjudged else ""
            line[scenario] = cell
        out.append(line)
    return pd.DataFrame(out, columns=["model", *scenarios])


def knowledge() -> pd.DataFrame:
    """What each method (by type) knows beyond the images: fgbg.references.KNOWS."""
    columns = list(next(iter(KNOWS.values())))
    rows = [{"method": kind, **{c: KNOWS[kind][c] or "-" for c in columns}} for kind in KNOWS]
    return pd.DataFrame(rows, columns=["method", *columns])


def convergence(results: Path, last: int = 5) -> pd.DataFrame:
    """Per scenario and model, over seeds: the spread (max - min) / mean of the validation
    loss over the last `last` epochs, and its change over the last 10 epochs (the training
    defaults' criterion: a flat held-out loss at the end), from every run's history.csv."""
    rows = []
    for run in runs(results, "models", "history.csv"):
        loss = pd.read_csv(run.path / "history.csv")["val_loss"]
        tail = loss.iloc[-last:]
        rows.append(
            {
                "scenario": run.scenario,
                "model": run.model,
                "spread": (tail.max() - tail.min()) / tail.mean(),
                "change_last_10": loss.iloc[-1] / loss.iloc[max(len(loss) - 11, 0)] - 1,
            }
        )
    table = pd.DataFrame(rows).groupby(["scenario", "model"], sort=False)
    return table.agg(
        runs=("spread", "size"),
        spread_max=("spread", "max"),
        change_last_10_min=("change_last_10", "min"),
        change_last_10_max=("change_last_10", "max"),
    ).reset_index()


# the headline numbers a shorter schedule must keep (higher is better?)
SCHEDULE_CHECKED = (
    ("inside_bg_on", "auroc", True),
    ("inside_bg_on", "tpr", True),
    ("inside_bg_on", "fpr", False),
    ("active_disks", "leakage", False),
    ("outside", "auroc", True),
)


def schedule_comparison(summary: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """This run against a baseline run (benchmarks/baseline/summary_60_epochs.csv: model,
    stratum, metric, scenario, mean, half_width) on SCHEDULE_CHECKED: "inside" when this
    run's mean lies in the baseline's 95 % interval, else "better" or "worse"."""
    keyed = summary.set_index(["scenario", "model", "stratum", "metric"])
    rows = []
    for b in baseline.itertuples(index=False):
        checked = {(s, m): up for s, m, up in SCHEDULE_CHECKED}
        key = (b.scenario, b.model, b.stratum, b.metric)
        if (b.stratum, b.metric) not in checked or key not in keyed.index:
            continue
        now = keyed.loc[key]
        low, high = b.mean - b.half_width, b.mean + b.half_width
        if low - 5e-4 <= now["mean"] <= high + 5e-4:  # the baseline is rounded to 3 digits
            verdict = "inside"
        else:
            verdict = "better" if (now["mean"] > high) == checked[b.stratum, b.metric] else "worse"
        rows.append(
            {
                "model": b.model,
                "scenario": b.scenario,
                "stratum": b.stratum,
                "metric": b.metric,
                "60 epochs": f"{b.mean:.3f} ± {b.half_width:.3f}",
                "this run": f"{now['mean']:.3f} ± {(now['ci95_high'] - now['ci95_low']) / 2:.3f}",
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def epochs_used(results: Path) -> pd.DataFrame:
    """Per model, over every scenario and seed: the epochs trained (the stopping rule's
    choice), how many runs stopped before the bound, and the best validation loss."""
    rows = []
    for trained in runs(results, "models", "run.json"):
        run = json.loads((trained.path / "run.json").read_text())
        history = pd.read_csv(trained.path / "history.csv")
        rows.append(
            {
                "model": trained.model,
                "epochs": len(history),
                "bound": run["training"]["epochs"],
                "early": bool(run.get("stopped_early")),
                "val_loss": history["val_loss"].min(),
            }
        )
    frame = pd.DataFrame(rows)
    table = frame.groupby("model", sort=False).agg(
        runs=("epochs", "size"),
        epochs_min=("epochs", "min"),
        epochs_median=("epochs", "median"),
        epochs_max=("epochs", "max"),
        bound=("bound", "max"),
        stopped_early=("early", "sum"),
        best_val_loss_mean=("val_loss", "mean"),
    )
    return table.reset_index().round(1)


def training_summary(epochs: pd.DataFrame, schedule: pd.DataFrame) -> pd.DataFrame:
    """Per model: the epochs it trained (median and range), its mean best validation loss,
    and how its headline rows compare with the fixed 60-epoch run (`schedule_comparison`)."""
    counts = schedule.groupby("model")["verdict"].value_counts().unstack(fill_value=0)
    rows = []
    for row in epochs.itertuples():
        mine = counts.loc[row.model] if row.model in counts.index else {}
        rows.append(
            {
                "model": row.model,
                "epochs": f"{row.epochs_median:.0f} ({row.epochs_min}-{row.epochs_max})",
                "best validation loss": row.best_val_loss_mean,
                "headline rows against 60 epochs": ", ".join(
                    f"{mine[v]} {v}" for v in ("inside", "better", "worse") if mine.get(v, 0)
                ),
            }
        )
    return pd.DataFrame(rows)


def tables(
    results: Path, pairs=(), target_model: str = "", baseline: Path | None = None
) -> dict[str, pd.DataFrame]:
    """Every generated table of a finished run, by name, in page order."""
    wide = pd.read_csv(results / "summary_wide.csv")
    found = pd.read_csv(results / "findings.csv")
    applicable = found[found["verdict"] != "not applicable"]
    out = {
        "headline": headline(wide),
        "findings": applicable[["model", "finding", "verdict", "numbers"]],
    }
    if pairs:
        out["comparisons"] = comparisons(per_run(results), list(pairs))
    summary_path = results / "summary.csv"
    summary = pd.read_csv(summary_path) if summary_path.exists() else None
    if summary is not None and (summary["stratum"] == PASS_STRATUM).any():
        out["pass_counts"] = pass_count_table(summary)
    if target_model and summary is not None:
        out["targets"] = targets(summary, target_model)
    out["knowledge"] = knowledge()
    if runs(results, "models", "history.csv"):
        out["convergence"] = convergence(results).round(4)
        out["epochs"] = epochs_used(results)
    if baseline is not None and summary is not None:
        out["schedule"] = schedule_comparison(summary, pd.read_csv(baseline))
        if "epochs" in out:
            out["training"] = training_summary(out["epochs"], out["schedule"])
    if any(results.glob("benchmarks/**/*.tsv")):
        out["rule_times"] = timing.rule_times(results).round(1)
        out["training_times"] = timing.training_times(results).round(2)
    return out


def main(results: Path, pairs: list[tuple[str, str]] = (), target_model: str = "") -> str:
    return "\n\n".join(markdown_table(t) for t in tables(results, pairs, target_model).values())


BLOCK = re.compile(
    r"(<!-- generated: (\w+)((?: \w+=[^ ]+)*) -->\n)(.*?)(<!-- end generated -->)", re.S
)


def cut(table: pd.DataFrame, options: str) -> pd.DataFrame:
    """The rows of `table` that a block's options keep: `models=A,B` (column `model`),
    `rows=STRATUM/METRIC,...` (columns `stratum`, `metric`)."""
    for option in options.split():
        key, values = option.split("=", 1)
        values = values.split(",")
        if key == "models":
            table = table[table["model"].isin(values)]
        elif key == "rows":
            table = table[(table["stratum"] + "/" + table["metric"]).isin(values)]
        else:
            raise ValueError(f"unknown option {key!r} in a generated block")
    return table


def fill(page: str, generated: dict[str, pd.DataFrame]) -> str:
    """`page` with every generated block replaced by its table (blocks naming a table that
    this run does not have are left as they are)."""

    def replace(match: re.Match) -> str:
        start, name, options, _, end = match.groups()
        if name not in generated:
            return match.group(0)
        return f"{start}{markdown_table(cut(generated[name], options))}\n{end}"

    return BLOCK.sub(replace, page)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument(
        "--compare", nargs="*", default=[], help="method pairs A:B for comparative sentences"
    )
    parser.add_argument("--targets", default="", help="a model whose targets to check")
    parser.add_argument("--write", nargs="*", default=[], type=Path, help="pages to fill")
    parser.add_argument(
        "--baseline", type=Path, help="a baseline run's headline CSV to compare with (schedule)"
    )
    args = parser.parse_args()
    pairs = [tuple(p.split(":")) for p in args.compare]
    generated = tables(args.results, pairs, args.targets, args.baseline)
    if not args.write:
        print("\n\n".join(markdown_table(t) for t in generated.values()))
    for page in args.write:
        page.write_text(fill(page.read_text(), generated))
