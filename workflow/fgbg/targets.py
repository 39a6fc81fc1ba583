"""What counts as separation, per run (SPEC sections 9 and 10): the targets, defined once.

A run (one scenario, method and seed) *passes* when every target is met on its held-out
tables. The summary (summary.csv), the README's tables and the tests read `TARGETS` from
here. The ranking and calling targets are relative to the ceiling of the same run: the
`bayes` reference (the exact posterior under the scenario's generative model) on the same
test images, so that a target moves with the geometry (on 4 x 4 cells no method reaches an
AUROC of 0.995 under a disk; the ceiling's is 0.97-0.98). The leakage targets stay
absolute: the ceiling leaks below 0.003 on every geometry tried. Per run and target the
verdict is:

- ``pass``: the run's value is on the target's side of the bound (bounds included);
- ``fail``: it is on the other side;
- ``not judged``: the run has no value (NaN or no row: a scenario without disks has no
  ``inside_bg_on`` stratum and no leakage), or the target is relative and the run has no
  ceiling (a config without the `bayes` reference). A run that is not judged on some
  target does not pass: k counts only runs that pass every target.

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
CEILING = "bayes"  # the method whose value in the same run a relative bound is offset from
EXCESS = "_excess"  # suffix of a metric's excess over the ceiling's value in the same run
EACH_DISK = "each_disk"  # a stratum standing for every disk's own region (disk0, disk1, ...)


@dataclass(frozen=True)
class Target:
    stratum: str
    metric: str
    side: str  # ">=" or "<="
    bound: float  # absolute, or with `relative` an offset from the ceiling's value
    relative: bool = False

    @property
    def label(self) -> str:
        bound = f"{CEILING} {self.bound:+g}" if self.relative else f"{self.bound:g}"
        return f"{self.metric} `{self.stratum}` {self.side} {bound}"

    def bound_for(self, ceiling: float = float("nan")) -> float:
        """The bound in a run whose ceiling value is `ceiling` (NaN: none)."""
        return self.bound + ceiling if self.relative else self.bound

    def verdict(self, value: float, ceiling: float = float("nan")) -> str:
        bound = self.bound_for(ceiling)
        if value is None or pd.isna(value) or pd.isna(bound):
            return NOT_JUDGED
        met = value >= bound if self.side == ">=" else value <= bound
        return PASS if met else FAIL

    def keys(self, present) -> list[tuple[str, str]]:
        """The (stratum, metric) keys among `present` that this target reads: its own, or
        for EACH_DISK every disk's region (disk0, disk1, ...)."""
        if self.stratum != EACH_DISK:
            return [(self.stratum, self.metric)] if (self.stratum, self.metric) in present else []
        return [(s, m) for s, m in present if m == self.metric and is_disk(s)]

    def worst(self, keys, value_of) -> tuple[str, str]:
        """The key among `keys` whose value (`value_of(key)`) is furthest on the wrong side."""
        return (max if self.side == "<=" else min)(keys, key=value_of)

    def value(self, values: dict) -> float:
        """This target's measure in one run's {(stratum, metric): value}; for EACH_DISK the
        worst disk's (NaN when the run has none, or a disk has none)."""
        keys = self.keys(values)
        if not keys or any(pd.isna(values[k]) for k in keys):
            return np.nan
        return values[self.worst(keys, values.get)]


def is_disk(stratum: str) -> bool:
    """A disk's own region (disk0, disk1, ...) in separation.csv."""
    return stratum.startswith("disk") and stratum[4:].isdigit()


TARGETS = (
    Target("inside_bg_on", "auroc", ">=", -0.005, relative=True),
    Target("inside_bg_on", "tpr", ">=", -0.03, relative=True),
    Target("inside_bg_on", "fpr", "<=", 0.01, relative=True),
    Target("active_disks", "leakage", "<=", 0.03),
    Target("active_disks", "leakage_ratio", "<=", 0.03),
    Target(EACH_DISK, "leakage", "<=", 0.05),
    Target("outside", "auroc", ">=", -0.005, relative=True),
    Target("inside_bg_off", "auroc", ">=", -0.005, relative=True),
)


def excess_over_ceiling(long: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows (scenario, model, seed, stratum, metric + EXCESS, value) of each run's `metric`
    minus the CEILING's in the same scenario, seed and stratum: how far a method is from the
    exact inference on the same images (for the log loss: the nats per cell that its scores
    lose against the exact posteriors). Runs without a ceiling have no rows."""
    keys = ["scenario", "seed", "stratum"]
    mine = long[long["metric"] == metric]
    ceiling = mine[mine["model"] == CEILING][[*keys, "value"]]
    joined = mine.merge(ceiling, on=keys, suffixes=("", "_ceiling"))
    joined["metric"] = metric + EXCESS
    joined["value"] = joined["value"] - joined["value_ceiling"]
    return joined[["scenario", "model", "seed", "stratum", "metric", "value"]]


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
    """One row per (scenario, model, seed, target): its value, the bound it is held to and
    the verdict, then one per run with target ``all targets`` (pass when every target
    passes, not judged when none fails but some is not judged, fail otherwise). `long`:
    per-run values with columns scenario, model, seed, stratum, metric, value (rates melted
    and separation, as in the summary); a relative target reads the bound from the
    CEILING's rows of the same scenario and seed."""
    keys = ["scenario", "model", "seed"]
    per_run = {
        run: dict(zip(zip(group["stratum"], group["metric"], strict=True), group["value"],
                      strict=True))
        for run, group in long.drop_duplicates([*keys, "stratum", "metric"]).groupby(
            keys, sort=False)
    }  # fmt: skip
    rows = []
    for (scenario, model, seed), values in per_run.items():
        ceiling = per_run.get((scenario, CEILING, seed), {})
        verdicts = []
        for target in targets:
            value, at_ceiling = float(target.value(values)), float(target.value(ceiling))
            verdicts.append(target.verdict(value, at_ceiling))
            bound = target.bound_for(at_ceiling)
            rows.append((scenario, model, seed, target.label, target.stratum, target.metric,
                         value, bound, verdicts[-1]))  # fmt: skip
        if all(v == PASS for v in verdicts):
            overall = PASS
        else:
            overall = FAIL if FAIL in verdicts else NOT_JUDGED
        rows.append((scenario, model, seed, ALL, "", "", np.nan, np.nan, overall))
    columns = [*keys, "target", "stratum", "metric", "value", "bound", "verdict"]
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
