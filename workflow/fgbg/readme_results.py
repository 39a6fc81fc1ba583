"""Write the Results tables (markdown) of docs/results.md and README.md from a finished run.

    python -m fgbg.readme_results [results/] [--compare A:B ...] [--targets MODEL]
                                  [--write docs/results.md README.md]

Without --write the tables are printed. With it, every block of each page between
`<!-- generated: NAME [models=A,B] [rows=STRATUM/METRIC,...] -->` and
`<!-- end generated -->` is replaced by the table NAME (headline, findings, comparisons,
targets, convergence), optionally cut to some models and (stratum, metric) rows; the text
around the blocks is left as it is.

Reads results/summary_wide.csv, results/findings.csv and the per-run rates.csv and
separation.csv under results/eval/. The comparisons are generated, never typed: each row
compares two methods on one quantity in one scenario with the paired 95 % interval of the
per-seed differences (the two methods of a seed share its data replicate), and says
"higher" or "lower" only when that interval excludes 0 (the findings' rule, without margin);
otherwise "not resolved", and "no verdict" for a zero-width interval or a saturated measure.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from fgbg.findings import Sample, paired
from fgbg.summary import read_runs

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
    runs = [
        (path.parts[-4], path.parts[-3], path.parts[-2][4:], path.parent)
        for path in sorted(results.glob("eval/*/*/seed*/rates.csv"))
    ]
    keys = ["scenario", "model", "seed", "stratum"]
    rates = read_runs([(*run[:3], run[3] / "rates.csv") for run in runs])
    separation = read_runs([(*run[:3], run[3] / "separation.csv") for run in runs])
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


# The layered model's targets: (stratum, metric, ">=" or "<=", bound)
TARGETS = (
    ("inside_bg_on", "auroc", ">=", 0.99),
    ("inside_bg_on", "tpr", ">=", 0.95),
    ("inside_bg_on", "fpr", "<=", 0.05),
    ("active_disks", "leakage", "<=", 0.05),
    ("outside", "auroc", ">=", 0.99),
    ("inside_bg_off", "auroc", ">=", 0.99),
)


def targets(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    """Each target per scenario: the mean [95 % CI] over seeds and whether it is met: "met"
    when the whole interval is on the right side of the bound, "missed by D" when the mean is
    on the wrong side (D = its distance to the bound), "mean met, CI crosses" otherwise."""
    rows = []
    keyed = summary[summary["model"] == model].set_index(["scenario", "stratum", "metric"])
    for scenario in dict.fromkeys(summary["scenario"]):
        for stratum, metric, side, bound in TARGETS:
            if (scenario, stratum, metric) not in keyed.index:
                continue
            r = keyed.loc[(scenario, stratum, metric)]
            sign = 1 if side == ">=" else -1
            low, high = r["ci95_low"], r["ci95_high"]
            worst = low if sign == 1 else high
            if sign * (r["mean"] - bound) < 0:
                verdict = f"missed by {abs(r['mean'] - bound):.3f}"
            elif sign * (worst - bound) >= 0:
                verdict = "met"
            else:
                verdict = "mean met, CI crosses"
            rows.append(
                {
                    "scenario": scenario,
                    "target": f"{metric} `{stratum}` {side} {bound}",
                    "mean [95 % CI]": f"{r['mean']:.3f} [{low:.3f}, {high:.3f}]",
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


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


def tables(results: Path, pairs=(), target_model: str = "") -> dict[str, pd.DataFrame]:
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
    if target_model:
        summary = pd.read_csv(results / "summary.csv")
        out["targets"] = targets(summary, target_model)
    if any(results.glob("models/*/*/seed*/history.csv")):
        out["convergence"] = convergence(results).round(4)
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
    args = parser.parse_args()
    pairs = [tuple(p.split(":")) for p in args.compare]
    generated = tables(args.results, pairs, args.targets)
    if not args.write:
        print("\n\n".join(markdown_table(t) for t in generated.values()))
    for page in args.write:
        page.write_text(fill(page.read_text(), generated))
