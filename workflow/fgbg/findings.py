"""The thesis's six qualitative findings (SPEC section 6), each tested on the summary tables.

Every finding is split into parts; each part compares one quantity with a bound:

- an absolute quantity (a rate, an error) is *supported* when its 95 % CI across seeds lies
  entirely on the claimed side of the bound, *not supported* when it lies entirely on the
  other side, *inconclusive* when the CI contains the bound (or cannot be computed);
- a comparison (stratum vs stratum, scenario vs scenario) uses the difference of the two
  means with a Welch t-interval (the seeds of different runs are independent models) and
  the same rule, with the bound being a practical margin DELTA: a difference "greater"
  must have its whole CI above +DELTA, "smaller" below -DELTA.

A finding is supported when all its parts are, not supported when any part is not, and
inconclusive otherwise. A scenario or model that was not run leaves its parts inconclusive.
The findings name the thesis's scenarios (x90, x50, x90_20); in x90_20 the rare and the
frequent disk are found from the disks' probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from scipy import stats

DELTA = 0.05  # practical margin for differences of rates, balanced accuracies and AUROCs
MAE_BOUND = 0.05  # "almost without error": mean absolute error of the background output
TPR_GOOD = 0.9  # "reconstructed well": TPR above ...
FPR_GOOD = 0.1  # ... and FPR below
VERDICTS = ("supported", "not supported", "inconclusive")
FINDINGS_COLUMNS = ("finding", "claim", "rule", "numbers", "verdict")


@dataclass
class Estimate:
    label: str
    mean: float
    std: float
    n: int
    low: float
    high: float

    def text(self) -> str:
        if math.isnan(self.mean):
            return f"{self.label} = n/a"
        ci = "" if math.isnan(self.low) else f" [{self.low:.3f}, {self.high:.3f}]"
        return f"{self.label} = {self.mean:.3f}{ci} (n={self.n})"


def _missing(label: str) -> Estimate:
    return Estimate(f"{label} (not run)", math.nan, math.nan, 0, math.nan, math.nan)


def lookup(table: pd.DataFrame, label: str, **keys) -> Estimate:
    """The summary row matching `keys` as an Estimate (NaN when absent)."""
    mask = pd.Series(True, index=table.index)
    for key, value in keys.items():
        mask &= table[key].astype(str) == str(value)
    rows = table[mask]
    if rows.empty:
        return _missing(label)
    r = rows.iloc[0]
    return Estimate(label, r["mean"], r["std"], int(r["n_seeds"]), r["ci95_low"], r["ci95_high"])


def difference(a: Estimate, b: Estimate, label: str) -> Estimate:
    """a - b with a Welch t-interval (NaN when either side has fewer than 2 seeds)."""
    mean = a.mean - b.mean
    missing = [e.label for e in (a, b) if e.n == 0]
    if missing:
        label = f"{label} [{'; '.join(missing)}]"
    if a.n < 2 or b.n < 2 or math.isnan(a.std) or math.isnan(b.std):
        return Estimate(label, mean, math.nan, min(a.n, b.n), math.nan, math.nan)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(label, mean, 0.0, min(a.n, b.n), mean, mean)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    return Estimate(label, mean, se, min(a.n, b.n), mean - half, mean + half)


def above(estimate: Estimate, bound: float) -> str:
    """Verdict of the claim 'estimate > bound'."""
    if math.isnan(estimate.low) or math.isnan(estimate.high):
        return "inconclusive"
    if estimate.low > bound:
        return "supported"
    if estimate.high < bound:
        return "not supported"
    return "inconclusive"


def below(estimate: Estimate, bound: float) -> str:
    """Verdict of the claim 'estimate < bound'."""
    flipped = Estimate(
        estimate.label, -estimate.mean, estimate.std, estimate.n, -estimate.high, -estimate.low
    )
    return above(flipped, -bound)


def combine(verdicts: list[str]) -> str:
    if verdicts and all(v == "supported" for v in verdicts):
        return "supported"
    if "not supported" in verdicts:
        return "not supported"
    return "inconclusive"


class _Tables:
    def __init__(self, summary, latent, model):
        self.summary, self.latent, self.model = summary, latent, model

    def rate(self, scenario, stratum, metric) -> Estimate:
        label = f"{scenario} {metric} {stratum}"
        return lookup(
            self.summary, label, scenario=scenario, model=self.model, stratum=stratum, metric=metric
        )

    def latent_metric(self, scenario, latent, dim, target, metric) -> Estimate:
        label = f"{scenario} {metric}({latent} -> {target})"
        return lookup(
            self.latent,
            label,
            scenario=scenario,
            model=self.model,
            latent=latent,
            dim=dim,
            target=target,
            metric=metric,
        )


def _row(number, claim, rule, parts):
    """parts: list of (Estimate, verdict)."""
    return {
        "finding": number,
        "claim": claim,
        "rule": rule,
        "numbers": "; ".join(f"{e.text()} -> {v}" for e, v in parts),
        "verdict": combine([v for _, v in parts]),
    }


def _disk_roles(disks: list[dict]) -> tuple[int, int]:
    """(rare, frequent) disk indices by activation probability."""
    probs = [d.get("probability", 0.9) for d in disks]
    return probs.index(min(probs)), probs.index(max(probs))


def findings(
    summary: pd.DataFrame,
    latent: pd.DataFrame,
    model: str,
    scenarios: dict[str, dict],
) -> pd.DataFrame:
    """One row per thesis finding: claim, rule, numbers (mean [95 % CI] (n)), verdict.

    summary / latent: the tidy tables of fgbg.summary; model: the dual model's name;
    scenarios: the config's scenarios (disk probabilities decide rare vs frequent).
    """
    t = _Tables(summary, latent, model)
    rows = []

    parts = []
    for s in scenarios:
        e = t.latent_metric(s, "background", "block", "g(x)", "mae")
        parts.append((e, below(e, MAE_BOUND)))
    rows.append(
        _row(
            1,
            "The background decoder reproduces g(x) almost without error in all scenarios.",
            f"every scenario: CI of the background output's MAE against g(x) below {MAE_BOUND}",
            parts,
        )
    )

    parts = []
    for s in ("x90", "x90_20"):
        tpr, fpr = t.rate(s, "outside", "tpr"), t.rate(s, "outside", "fpr")
        parts += [(tpr, above(tpr, TPR_GOOD)), (fpr, below(fpr, FPR_GOOD))]
    rows.append(
        _row(
            2,
            "Cells away from the background are reconstructed well.",
            f"x90 and x90_20 (x50's outside cells are finding 4): CI of TPR(outside) above "
            f"{TPR_GOOD} and CI of FPR(outside) below {FPR_GOOD}",
            parts,
        )
    )

    off = difference(
        t.rate("x90", "inside_bg_off", "tpr"),
        t.rate("x90", "outside", "tpr"),
        "x90 TPR(inside_bg_off) - TPR(outside)",
    )
    on = difference(
        t.rate("x90", "inside_bg_on", "fpr"),
        t.rate("x90", "outside", "fpr"),
        "x90 FPR(inside_bg_on) - FPR(outside)",
    )
    rows.append(
        _row(
            3,
            "In x90, cells inside the disk are poor: missed when the disk is off, some always "
            "on regardless of their state.",
            f"x90: CI of TPR(inside_bg_off) - TPR(outside) below -{DELTA} and CI of "
            f"FPR(inside_bg_on) - FPR(outside) above +{DELTA}",
            [(off, below(off, -DELTA)), (on, above(on, DELTA))],
        )
    )

    better = difference(
        t.rate("x50", "inside", "balanced_accuracy"),
        t.rate("x90", "inside", "balanced_accuracy"),
        "balanced accuracy(inside) x50 - x90",
    )
    fp = difference(
        t.rate("x50", "outside", "fpr"), t.rate("x90", "outside", "fpr"), "FPR(outside) x50 - x90"
    )
    rows.append(
        _row(
            4,
            "In x50, cells inside the disk do better than in x90, but some cells outside are "
            "always on (more false positives outside).",
            f"CI of balanced accuracy(inside) x50 - x90 above +{DELTA} and CI of FPR(outside) "
            f"x50 - x90 above +{DELTA}",
            [(better, above(better, DELTA)), (fp, above(fp, DELTA))],
        )
    )

    if "x90_20" in scenarios:
        rare, frequent = _disk_roles(scenarios["x90_20"]["disks"])
    else:
        rare, frequent = 1, 0
    ba = "balanced_accuracy"
    rare_ba = t.rate("x90_20", f"disk{rare}_inside", ba)
    vs_frequent = difference(
        rare_ba,
        t.rate("x90_20", f"disk{frequent}_inside", ba),
        f"x90_20 balanced accuracy disk{rare}_inside (rare) - disk{frequent}_inside (frequent)",
    )
    vs_outside = difference(
        rare_ba,
        t.rate("x90_20", "outside", ba),
        f"x90_20 balanced accuracy disk{rare}_inside (rare) - outside",
    )
    rows.append(
        _row(
            5,
            "In x90_20, cells under the rare top-right disk do well; cells under the frequent "
            "bottom-left disk do poorly.",
            f"x90_20: CI of balanced accuracy(rare-disk cells) - (frequent-disk cells) above "
            f"+{DELTA}, and CI of (rare-disk cells) - (outside cells) above -{DELTA}",
            [(vs_frequent, above(vs_frequent, DELTA)), (vs_outside, above(vs_outside, -DELTA))],
        )
    )

    def leak(s, d):
        return t.latent_metric(s, "z1", "block", f"disk{d}", "probe_auroc")

    across = difference(leak("x90", 0), leak("x50", 0), "probe AUROC(z1 -> disk0) x90 - x50")
    within = difference(
        leak("x90_20", frequent),
        leak("x90_20", rare),
        f"x90_20 probe AUROC(z1 -> disk{frequent}, frequent) - (z1 -> disk{rare}, rare)",
    )
    rows.append(
        _row(
            6,
            "Background information leaks into z1 when the background is frequent.",
            f"CI of the z1 probe's AUROC for the disk's activity, x90 - x50, above +{DELTA}, and "
            f"in x90_20, frequent disk - rare disk, above +{DELTA}",
            [(across, above(across, DELTA)), (within, above(within, DELTA))],
        )
    )
    return pd.DataFrame(rows, columns=list(FINDINGS_COLUMNS))
