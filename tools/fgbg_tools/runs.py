"""The one reader of the results folder's layout (the workflow's rules write it):

results/{stage}/{scenario}/{model}/seed{k}/...   stage: models (training), eval
results/benchmarks/{rule}/{scenario}/{model}/seed{k}.tsv
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Run:
    scenario: str
    model: str
    seed: int
    path: Path  # the run's folder under its stage

    def benchmark(self, results, rule: str) -> Path:
        """The Snakemake benchmark TSV of this run's `rule` job."""
        return Path(results, "benchmarks", rule, self.scenario, self.model, f"seed{self.seed}.tsv")


def runs(results, stage: str, filename: str) -> list[Run]:
    """Every run of `stage` ("models" or "eval") that has `filename`, in path order."""
    return [
        Run(path.parts[-4], path.parts[-3], int(path.parts[-2].removeprefix("seed")), path.parent)
        for path in sorted(Path(results, stage).glob(f"*/*/seed*/{filename}"))
    ]


def run_dir(results, stage: str, scenario: str, model: str, seed: int) -> Path:
    return Path(results, stage, scenario, model, f"seed{seed}")


def markdown_table(frame: pd.DataFrame) -> str:
    """A pandas frame as a markdown table (empty cells for missing values)."""

    def row(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(frame.columns), row(["---"] * len(frame.columns))]
    lines += [row("" if pd.isna(c) else c for c in values) for values in frame.itertuples(False)]
    return "\n".join(lines)
