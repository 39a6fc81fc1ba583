"""Print the README's Results (markdown) from a finished run's tables.

    python -m fgbg.readme_results [results/] [--compare A:B ...]

Reads results/summary_wide.csv, results/findings.csv and the per-run rates.csv and
separation.csv under results/eval/. The comparative sentences are generated, never typed:
each compares two methods on one quantity in one scenario with the paired 95 % interval of
the per-seed differences (the two methods of a seed share its data replicate), and says
"higher" or "lower" only when that interval excludes 0 (the findings' rule, without margin);
otherwise it says the difference is not resolved.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from fgbg.findings import Sample, paired

HEADLINE = (
    ("outside", "auroc"),
    ("inside_bg_off", "auroc"),
    ("inside_bg_off_novel", "auroc"),
    ("inside_bg_on", "auroc"),
    ("inside_bg_on", "tpr"),
    ("inside_bg_on", "fpr"),
    ("active_disks", "leakage"),
    ("inside_active_disks", "pixel_ap"),
)
# (stratum, metric, "higher is better")
COMPARED = (
    ("inside_bg_on", "auroc", True),
    ("inside_bg_on", "fpr", False),
    ("active_disks", "leakage", False),
    ("outside", "auroc", True),
    ("inside_bg_off", "auroc", True),
)


def markdown_table(frame: pd.DataFrame) -> str:
    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(frame.columns), row(["---"] * len(frame.columns))]
    lines += [row("" if pd.isna(c) else c for c in values) for values in frame.itertuples(False)]
    return "\n".join(lines)


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
    frames = []
    for path in sorted(results.glob("eval/*/*/seed*/rates.csv")):
        scenario, model, seed = path.parts[-4], path.parts[-3], int(path.parts[-2][4:])
        rates = pd.read_csv(path).melt(id_vars="stratum", var_name="metric")
        separation = pd.read_csv(path.with_name("separation.csv")).rename(
            columns={"region": "stratum"}
        )[["stratum", "metric", "value"]]
        for table in (rates, separation):
            frames.append(table.assign(scenario=scenario, model=model, seed=seed))
    return pd.concat(frames, ignore_index=True)


def sample(runs: pd.DataFrame, scenario, model, stratum, metric) -> Sample:
    rows = runs[
        (runs["scenario"] == scenario)
        & (runs["model"] == model)
        & (runs["stratum"] == stratum)
        & (runs["metric"] == metric)
    ]
    values = rows.set_index("seed")["value"].astype(float).dropna()
    return Sample(f"{scenario} {model} {metric}({stratum})", values)


def comparison(runs: pd.DataFrame, scenario: str, a: str, b: str, stratum, metric, up) -> str:
    """One sentence: a against b on one quantity, from the paired interval."""
    first, second = (sample(runs, scenario, m, stratum, metric) for m in (a, b))
    part = paired(first, second, ">", 0.0)
    what = f"`{stratum}` {metric}"
    if part.verdict == "inconclusive" and part.reason:
        return f"- {scenario}, {what}: `{a}` vs `{b}`: no verdict ({part.reason})."
    diff = f"paired difference {part.mean:+.3f} [{part.low:+.3f}, {part.high:+.3f}], n = {part.n}"
    if part.verdict == "inconclusive":
        return f"- {scenario}, {what}: `{a}` and `{b}` are not resolved ({diff})."
    higher = part.verdict == "supported"
    word = "higher" if higher else "lower"
    better = "better" if higher == up else "worse"
    return f"- {scenario}, {what}: `{a}` is {word} ({better}) than `{b}` ({diff})."


def comparisons(runs: pd.DataFrame, pairs: list[tuple[str, str]]) -> str:
    scenarios = list(dict.fromkeys(runs["scenario"]))
    lines = [
        comparison(runs, scenario, a, b, stratum, metric, up)
        for a, b in pairs
        for scenario in scenarios
        for stratum, metric, up in COMPARED
    ]
    return "\n".join(lines)


def convergence(results: Path, last: int = 5) -> pd.DataFrame:
    """Per scenario and model, over seeds: the spread (max - min) / mean of the validation
    loss over the last `last` epochs, and its change over the last 10 epochs (the training
    defaults' criterion: a flat held-out loss at the end), from every run's history.csv."""
    rows = []
    for path in sorted(results.glob("models/*/*/seed*/history.csv")):
        loss = pd.read_csv(path)["val_loss"]
        tail = loss.iloc[-last:]
        rows.append(
            {
                "scenario": path.parts[-4],
                "model": path.parts[-3],
                "spread": (tail.max() - tail.min()) / tail.mean(),
                "change_last_10": (loss.iloc[-1] - loss.iloc[0 if len(loss) < 11 else -11])
                / loss.iloc[0 if len(loss) < 11 else -11],
            }
        )
    table = pd.DataFrame(rows).groupby(["scenario", "model"], sort=False)
    return table.agg(
        runs=("spread", "size"),
        spread_max=("spread", "max"),
        change_last_10_min=("change_last_10", "min"),
        change_last_10_max=("change_last_10", "max"),
    ).reset_index()


def main(results: Path, pairs: list[tuple[str, str]] = ()) -> str:
    wide = pd.read_csv(results / "summary_wide.csv")
    found = pd.read_csv(results / "findings.csv")
    applicable = found[found["verdict"] != "not applicable"]
    parts = [
        markdown_table(headline(wide)),
        markdown_table(applicable[["model", "finding", "verdict", "numbers"]]),
    ]
    if pairs:
        parts.append(comparisons(per_run(results), list(pairs)))
    if any(results.glob("models/*/*/seed*/history.csv")):
        parts.append(markdown_table(convergence(results).round(4)))
    return "\n\n".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument(
        "--compare", nargs="*", default=[], help="method pairs A:B for comparative sentences"
    )
    args = parser.parse_args()
    print(main(args.results, [tuple(p.split(":")) for p in args.compare]))
