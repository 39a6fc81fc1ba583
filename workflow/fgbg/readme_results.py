"""Print the README's Results tables (markdown) from a finished run's summary files.

    python -m fgbg.readme_results [results/]

Reads only results/summary_wide.csv and results/findings.csv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HEADLINE_STRATA = ("outside", "inside_bg_off", "inside_bg_on")
HEADLINE_METRICS = ("tpr", "fpr", "auroc")


def markdown_table(frame: pd.DataFrame) -> str:
    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(frame.columns), row(["---"] * len(frame.columns))]
    lines += [row("" if pd.isna(c) else c for c in values) for values in frame.itertuples(False)]
    return "\n".join(lines)


def headline(wide: pd.DataFrame) -> pd.DataFrame:
    """TPR, FPR and AUROC per model and the three strata, scenarios as columns."""
    keep = wide["stratum"].isin(HEADLINE_STRATA) & wide["metric"].isin(HEADLINE_METRICS)
    return wide[keep].reset_index(drop=True)


def main(results: Path) -> str:
    wide = pd.read_csv(results / "summary_wide.csv")
    found = pd.read_csv(results / "findings.csv")
    return "\n\n".join(
        [
            markdown_table(headline(wide)),
            markdown_table(found[["finding", "claim", "verdict", "numbers"]]),
        ]
    )


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "results")))
