"""What counts as separation, per run (SPEC section 9): the targets, defined once.

A run (one scenario, method and seed) *passes* when every target is met on its held-out
tables. The summary (summary.csv), the README's tables and the tests read `TARGETS` from
here. Per run and target the verdict is:

- ``pass``: the run's value is on the target's side of the bound (bounds included);
- ``fail``: it is on the other side;
- ``not judged``: the run has no value (NaN or no row: a scenario without disks has no
  ``inside_bg_on`` stratum and no leakage). A run that is not judged on some target does not
  pass: k counts only runs that pass every target.

Across the n runs (seeds) of a scenario and method, k of n pass, with the exact binomial
(Clopper-Pearson) 95 % interval of the pass probability: a pass/fail outcome is not a mean
with a t-interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

PASS, FAIL, NOT_JUDGED = "pass", "fail", "not judged"
ALL = "all targets"


@dataclass(frozen=True)
class Target:
    stratum: str
    metric: str
    side: str  # ">=" or "<="
    bound: float

    @property
    def label(self) -> str:
        return f"{self.metric} `{self.stratum}` {self.side} {self.bound:g}"

    def verdict(self, value: float) -> str:
        if value is None or pd.isna(value):
            return NOT_JUDGED
        met = value >= self.bound if self.side == ">=" else value <= self.bound
        return PASS if met else FAIL


TARGETS = (
    Target("inside_bg_on", "auroc", ">=", 0.995),
    Target("inside_bg_on", "tpr", ">=", 0.95),
    Target("inside_bg_on", "fpr", "<=", 0.02),
    Target("active_disks", "leakage", "<=", 0.03),
    Target("active_disks", "leakage_ratio", "<=", 0.03),
    Target("outside", "auroc", ">=", 0.99),
    Target("inside_bg_off", "auroc", ">=", 0.99),
)
PASS_COUNT_COLUMNS = (
    "scenario", "model", "target", "stratum", "metric", "k", "n", "not_judged", "ci95_low",
    "ci95_high",
)  # fmt: skip


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a proportion k / n (NaN for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def run_verdicts(long: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """One row per (scenario, model, seed, target): its value and verdict, then one per run
    with target ``all targets`` (pass when every target passes, not judged when none fails
    but some is not judged, fail otherwise). `long`: per-run values with columns scenario,
    model, seed, stratum, metric, value (rates melted and separation, as in the summary)."""
    keys = ["scenario", "model", "seed"]
    runs = long[keys].drop_duplicates()
    values = long.drop_duplicates([*keys, "stratum", "metric"]).set_index(
        [*keys, "stratum", "metric"]
    )["value"]
    rows = []
    for run in runs.itertuples(index=False):
        verdicts = []
        for target in targets:
            value = values.get((*run, target.stratum, target.metric), np.nan)
            value = float(value) if not pd.isna(value) else np.nan
            verdicts.append(target.verdict(value))
            rows.append((*run, target.label, target.stratum, target.metric, value, verdicts[-1]))
        if all(v == PASS for v in verdicts):
            overall = PASS
        else:
            overall = FAIL if FAIL in verdicts else NOT_JUDGED
        rows.append((*run, ALL, "", "", np.nan, overall))
    columns = [*keys, "target", "stratum", "metric", "value", "verdict"]
    return pd.DataFrame(rows, columns=columns)


def pass_counts(long: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """Per (scenario, model) and target (``all targets`` first): k runs passing of n, the
    runs not judged, and the Clopper-Pearson 95 % interval of k / n. Scenario and model in
    the order they first occur in `long`."""
    verdicts = run_verdicts(long, targets)
    labels = [ALL, *(t.label for t in targets)]
    rows = []
    for scenario in dict.fromkeys(verdicts["scenario"]):
        for model in dict.fromkeys(verdicts.loc[verdicts["scenario"] == scenario, "model"]):
            mine = verdicts[(verdicts["scenario"] == scenario) & (verdicts["model"] == model)]
            for label in labels:
                group = mine[mine["target"] == label]
                k, n = int((group["verdict"] == PASS).sum()), len(group)
                first = group.iloc[0]
                rows.append(
                    (scenario, model, label, first["stratum"], first["metric"], k, n,
                     int((group["verdict"] == NOT_JUDGED).sum()), *clopper_pearson(k, n))
                )  # fmt: skip
    return pd.DataFrame(rows, columns=list(PASS_COUNT_COLUMNS))


def format_count(k: int, n: int, low: float, high: float, not_judged: int = 0) -> str:
    """'3 of 5 [0.15, 0.95]' (with ', 1 not judged' when some runs could not be judged)."""
    text = f"{k} of {n} [{low:.2f}, {high:.2f}]"
    return f"{text}, {not_judged} not judged" if not_judged else text
