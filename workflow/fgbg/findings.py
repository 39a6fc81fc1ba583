"""The thesis's six findings (SPEC section 6), tested for every method on the per-run tables.

`rates` and `latent` are every run's rates.csv and latent.csv with `scenario, model, seed`
added (fgbg.summary.read_runs). Each finding has *parts*; a part takes one quantity per seed
and compares it with a bound, through a 95 % Student-t interval over the seeds:

- absolute: the quantity itself (one-sample interval);
- paired: a difference within the same runs (two strata of one run; the background
  decoder against the constant predictor on the same test images): the per-seed
  differences (or ratios), then a one-sample interval;
- Welch: a difference between two scenarios (independent data and models): Welch's interval.

A part is *supported* when its interval lies entirely on the claimed side of the bound, *not
supported* when entirely on the other side, *inconclusive* otherwise. A quantity at the
measure's end (0 or 1 for a rate) in every seed is evidence, not a failed interval: an
absolute part whose every value sits at an end on the claimed side of the bound is
supported (a perfect FPR of 0 in every seed supports "FPR < 0.1"), at an end on the other
side not supported. It is inconclusive, with the reason in `numbers`, when a scenario or
quantity is missing ("not run": no rows; "no data": rows, but every value NaN, as inside a
disk of a scenario without one), when only one seed has a value ("one run"), when the
interval has zero width, and when a difference is saturated: every value of both sides at
the measure's maximum, or every one at its minimum, so that no difference could show. A finding is
supported when all its parts are, not supported when any part is not, inconclusive
otherwise; "not applicable" for a method without the quantity (findings 1 and 6 need a
background decoder and a latent z1).

Rules (strata of fgbg.metrics.rates; δ = 0.05; BA = balanced accuracy; x90_20's rare and
frequent disk come from the disks' probabilities):

1. x90, x50, x90_20: MAE(background output, g(x)) < 0.05; MAE / MAE(constant) < 0.25
   (paired), the constant being the per-block median of g(x) over the training images.
2. x90, x90_20: TPR(outside) > 0.9; FPR(outside) < 0.1.
3. x90 (paired): TPR(inside_bg_off) - TPR(outside) < -δ ("missed when the disk is off");
   FPR(inside_bg_off) - FPR(outside) > +δ ("always on regardless of their state").
4. (Welch) BA(inside_bg_off) x50 - x90 > +δ; FPR(outside) x50 - x90 > +δ.
5. x90_20: TPR(rare disk's inside_bg_off) > 0.9; FPR(same) < 0.1; BA(frequent disk's
   inside_bg_off) - BA(rare disk's inside_bg_off) < -δ (paired).
6. D(disk) = sum over z1's dimensions of 2 * AUROC(dimension -> disk) - 1, in
   [0, dim z1] (how many dimensions' worth of z1 carry the disk):
   D(x90, disk0) - D(x50, disk0) > +0.5 (Welch); x90_20 D(frequent) - D(rare) > +0.5 (paired).

Strata are compared disk-off with disk-off: the pooled `inside` mixes disk-off and disk-on
images in proportions set by the disk's probability, so a model that behaves the same in
every scenario would differ there; and with the disk on, FPR measures the disk's leakage,
which any model without separation has everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from fgbg.summary import t_interval

DELTA = 0.05  # practical margin for differences of rates and balanced accuracies
DIMS_DELTA = 0.5  # ... and of D, in z1 dimensions
MAE_BOUND = 0.05  # "almost without error": MAE of the background output against g(x)
RATIO_BOUND = 0.25  # ... and at most a quarter of the constant predictor's MAE
TPR_GOOD, FPR_GOOD = 0.9, 0.1  # "reconstructed well"
THESIS = ("x90", "x50", "x90_20")
VERDICTS = ("supported", "not supported", "inconclusive", "not applicable")
COLUMNS = ("model", "finding", "claim", "rule", "numbers", "verdict")
BA = "balanced_accuracy"
NAMES = {"tpr": "TPR", "fpr": "FPR", BA: "BA"}


@dataclass
class Sample:
    """One quantity's value per seed (index: seed) and the range the measure can take."""

    name: str
    values: pd.Series
    low: float = 0.0
    high: float = 1.0

    @property
    def present(self) -> pd.Series:
        """The seeds with a value (NaN marks a run without one)."""
        return self.values.dropna()

    def at(self, bound: float) -> bool:
        v = self.present
        return len(v) > 0 and bool(np.allclose(v, bound, rtol=0, atol=1e-12))


@dataclass
class Part:
    label: str
    kind: str  # absolute | paired | welch
    mean: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n: str = "0"
    verdict: str = "inconclusive"
    reason: str = ""

    def text(self) -> str:
        if math.isnan(self.mean):
            return f"{self.label}: {self.reason} -> {self.verdict}"
        ci = "" if math.isnan(self.low) else f" [{self.low:.3f}, {self.high:.3f}]"
        why = f", {self.reason}" if self.reason else ""
        return f"{self.label} = {self.mean:.3f}{ci} (n={self.n}{why}) -> {self.verdict}"


def side(low: float, high: float, claim: str, bound: float) -> str:
    """Verdict of 'quantity > bound' (claim '>') or '< bound' (claim '<') from its interval."""
    if claim == "<":
        low, high, bound = -high, -low, -bound
    if low > bound:
        return "supported"
    return "not supported" if high < bound else "inconclusive"


def judge(part: Part, claim: str, bound: float, saturated: str = "") -> Part:
    """Set the part's verdict; anything without a usable interval stays inconclusive."""
    if math.isnan(part.mean):
        part.reason = part.reason or "no data"
    elif math.isnan(part.low):
        part.reason = "one run"
    elif saturated:
        part.reason = saturated
    elif math.isclose(part.low, part.high, rel_tol=1e-9, abs_tol=1e-12):
        part.reason = "zero-width interval"
    else:
        part.verdict = side(part.low, part.high, claim, bound)
    return part


def _missing(*samples: Sample) -> str:
    """'not run' (no rows) or 'no data' (only NaN values), naming the samples when only some
    of them are missing; '' when every sample has a value."""
    reasons = []
    for why, gone in (
        ("not run", [s.name for s in samples if s.values.empty]),
        ("no data", [s.name for s in samples if not s.values.empty and s.present.empty]),
    ):
        if gone:
            reasons.append(why if len(gone) == len(samples) else f"{why}: {', '.join(gone)}")
    return "; ".join(reasons)


def _one_sample(label: str, kind: str, values: pd.Series, bounds=None) -> Part:
    t = t_interval(values, bounds=bounds)
    return Part(label, kind, t["mean"], t["ci95_low"], t["ci95_high"], str(t["n_seeds"]))


def _at_bound(*samples: Sample) -> str:
    """Why no verdict can show: every value of every sample at the same end of its range."""
    both = "both " if len(samples) > 1 else ""
    for end in ("high", "low"):
        if all(s.at(getattr(s, end)) for s in samples):
            value = getattr(samples[0], end)
            return f"{both}at the measure's {end}est value {value:g} in every seed"
    return ""


def absolute(s: Sample, claim: str, bound: float) -> Part:
    """The quantity itself against the bound; every seed (at least 2) at an end of the
    measure's range is evidence for the side that end lies on."""
    part = _one_sample(s.name, "absolute", s.values, bounds=(s.low, s.high))
    part.reason = _missing(s)
    saturated = _at_bound(s)
    if saturated and len(s.present) >= 2:
        end = s.low if s.at(s.low) else s.high
        part.reason = saturated
        part.verdict = side(end, end, claim, bound) if end != bound else "not supported"
        return part
    return judge(part, claim, bound, saturated)


def paired(a: Sample, b: Sample, claim: str, bound: float, ratio: bool = False) -> Part:
    """a - b (or a / b) per seed, on the seeds both have, then a one-sample interval."""
    both = pd.concat([a.values, b.values], axis=1, join="inner").dropna()
    values = both.iloc[:, 0] / both.iloc[:, 1] if ratio else both.iloc[:, 0] - both.iloc[:, 1]
    values = values.replace([np.inf, -np.inf], np.nan).dropna()
    op = "/" if ratio else "-"
    same = a.name.split(" ")[0] == b.name.split(" ")[0]  # one scenario: name it once
    label = f"{a.name} {op} {b.name.split(' ', 1)[1] if same else b.name} (paired)"
    part = _one_sample(label, "paired", values)
    part.reason = _missing(a, b)
    return judge(part, claim, bound, "" if ratio else _at_bound(a, b))


def welch(a: Sample, b: Sample, claim: str, bound: float) -> Part:
    """a - b between independent runs, with Welch's t-interval."""
    x, y = a.values.dropna().to_numpy(float), b.values.dropna().to_numpy(float)
    part = Part(f"{a.name} - {b.name} (Welch)", "welch", n=f"{len(x)}+{len(y)}")
    part.reason = _missing(a, b)
    if len(x) and len(y):
        part.mean = float(x.mean() - y.mean())
    if len(x) >= 2 and len(y) >= 2:
        va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
        half = 0.0
        if va + vb > 0:
            df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
            half = float(stats.t.ppf(0.975, df)) * math.sqrt(va + vb)
        part.low, part.high = part.mean - half, part.mean + half
    return judge(part, claim, bound, _at_bound(a, b))


class Runs:
    """The per-seed quantities of one method."""

    def __init__(self, rates: pd.DataFrame, latent: pd.DataFrame, method: str):
        self.rates = rates[rates["model"].astype(str) == method]
        self.latent = latent[latent["model"].astype(str) == method].astype({"dim": str})

    def rate(self, scenario: str, stratum: str, metric: str) -> Sample:
        r = self.rates
        rows = r[(r["scenario"] == scenario) & (r["stratum"] == stratum)]
        name = f"{scenario} {NAMES[metric]}({stratum})"
        return Sample(name, rows.set_index("seed")[metric].astype(float))

    def _latent(self, scenario: str, latent: str, target: str, metric: str) -> pd.DataFrame:
        t = self.latent
        keep = (t["scenario"] == scenario) & (t["latent"] == latent) & (t["target"] == target)
        return t[keep & (t["metric"] == metric)]

    def mae(self, scenario: str, predictor: str) -> Sample:
        rows = self._latent(scenario, predictor, "g(x)", "mae")
        values = rows.set_index("seed")["value"].astype(float).dropna()
        return Sample(f"{scenario} MAE({predictor})", values, 0.0, math.inf)

    def disk_dims(self, scenario: str, disk: int) -> Sample:
        """D = sum over z1's dimensions of 2 * AUROC - 1 (NaN when a dimension has none)."""
        rows = self._latent(scenario, "z1", f"disk{disk}", "auroc")
        rows = rows[rows["dim"] != "block"]
        per_seed = rows.groupby("seed")["value"]
        values = per_seed.agg(lambda v: (2 * v - 1).sum() if v.notna().all() else math.nan)
        dims = float(per_seed.size().max()) if len(rows) else math.inf
        return Sample(f"{scenario} D(z1 -> disk{disk})", values.dropna(), 0.0, dims)

    def has(self, latent: str) -> bool:
        return bool((self.latent["latent"] == latent).any())


def disk_roles(scenarios: dict) -> tuple[int, int] | None:
    """(rare, frequent) disk of x90_20 by activation probability; None without two."""
    disks = scenarios.get("x90_20", {}).get("disks", [])
    probs = [d.get("probability", 0.9) for d in disks]
    if len(probs) < 2 or min(probs) == max(probs):
        return None
    return probs.index(min(probs)), probs.index(max(probs))


FINDINGS: list[tuple[int, str, str, str | None, object]] = []


def finding(number: int, claim: str, rule: str, needs: str | None = None):
    """Register a finding: its claim (the thesis), its rule (in words) and its parts."""

    def register(parts):
        FINDINGS.append((number, claim, rule, needs, parts))
        return parts

    return register


@finding(
    1,
    "The background decoder reproduces g(x) almost without error in all scenarios.",
    f"x90, x50, x90_20: MAE(background, g(x)) < {MAE_BOUND}; MAE(background) / MAE(constant: "
    f"per-block median of g(x) over the training images) < {RATIO_BOUND}, paired",
    needs="background",
)
def finding1(r: Runs, roles) -> list[Part]:
    parts = []
    for s in THESIS:
        model, constant = r.mae(s, "background"), r.mae(s, "constant")
        parts += [absolute(model, "<", MAE_BOUND), paired(model, constant, "<", RATIO_BOUND, True)]
    return parts


@finding(
    2,
    "Cells away from the background are reconstructed well.",
    f"x90, x90_20: TPR(outside) > {TPR_GOOD}; FPR(outside) < {FPR_GOOD}",
)
def finding2(r: Runs, roles) -> list[Part]:
    parts = []
    for s in ("x90", "x90_20"):
        parts += [absolute(r.rate(s, "outside", "tpr"), ">", TPR_GOOD)]
        parts += [absolute(r.rate(s, "outside", "fpr"), "<", FPR_GOOD)]
    return parts


@finding(
    3,
    "In x90, cells inside the disk are poor: missed when the disk is off, some always on "
    "regardless of their state.",
    f"x90, paired: TPR(inside_bg_off) - TPR(outside) < -{DELTA}; FPR(inside_bg_off) - "
    f"FPR(outside) > +{DELTA}",
)
def finding3(r: Runs, roles) -> list[Part]:
    def vs_outside(metric):
        return r.rate("x90", "inside_bg_off", metric), r.rate("x90", "outside", metric)

    return [paired(*vs_outside("tpr"), "<", -DELTA), paired(*vs_outside("fpr"), ">", DELTA)]


@finding(
    4,
    "In x50, cells inside the disk do better than in x90, but some cells outside are always "
    "on (more false positives outside).",
    f"Welch: BA(inside_bg_off) x50 - x90 > +{DELTA}; FPR(outside) x50 - x90 > +{DELTA}",
)
def finding4(r: Runs, roles) -> list[Part]:
    return [
        welch(r.rate("x50", "inside_bg_off", BA), r.rate("x90", "inside_bg_off", BA), ">", DELTA),
        welch(r.rate("x50", "outside", "fpr"), r.rate("x90", "outside", "fpr"), ">", DELTA),
    ]


@finding(
    5,
    "In x90_20, cells under the rare top-right disk do well; cells under the frequent "
    "bottom-left disk do poorly.",
    f"x90_20, disk off: TPR(rare disk's cells) > {TPR_GOOD}; FPR(rare) < {FPR_GOOD}; "
    f"BA(frequent) - BA(rare) < -{DELTA}, paired",
)
def finding5(r: Runs, roles) -> list[Part]:
    if roles is None:
        return [Part("x90_20 rare and frequent disk", "paired", reason="not run")]
    rare, frequent = (f"disk{d}_inside_bg_off" for d in roles)
    return [
        absolute(r.rate("x90_20", rare, "tpr"), ">", TPR_GOOD),
        absolute(r.rate("x90_20", rare, "fpr"), "<", FPR_GOOD),
        paired(r.rate("x90_20", frequent, BA), r.rate("x90_20", rare, BA), "<", -DELTA),
    ]


@finding(
    6,
    "Background information leaks into z1 when the background is frequent.",
    "D = sum over z1's dimensions of 2 AUROC(dimension -> disk) - 1: D(disk0) x90 - x50 > "
    f"+{DIMS_DELTA} (Welch); x90_20 D(frequent) - D(rare) > +{DIMS_DELTA} (paired)",
    needs="z1",
)
def finding6(r: Runs, roles) -> list[Part]:
    across = welch(r.disk_dims("x90", 0), r.disk_dims("x50", 0), ">", DIMS_DELTA)
    if roles is None:
        return [across, Part("x90_20 rare and frequent disk", "paired", reason="not run")]
    rare, frequent = roles
    within = paired(r.disk_dims("x90_20", frequent), r.disk_dims("x90_20", rare), ">", DIMS_DELTA)
    return [across, within]


def combine(verdicts: list[str]) -> str:
    if verdicts and all(v == "supported" for v in verdicts):
        return "supported"
    return "not supported" if "not supported" in verdicts else "inconclusive"


def method_parts(
    rates: pd.DataFrame, latent: pd.DataFrame, method: str, scenarios: dict, dual: bool
) -> dict[int, list[Part] | None]:
    """Every finding's parts for one method; None where the finding does not apply."""
    runs, roles = Runs(rates, latent, method), disk_roles(scenarios)
    out = {}
    for number, _, _, needs, rule in FINDINGS:
        applies = needs is None or dual or runs.has(needs)
        out[number] = rule(runs, roles) if applies else None
    return out


def findings(
    rates: pd.DataFrame,
    latent: pd.DataFrame,
    methods: list[str],
    scenarios: dict[str, dict],
    dual: list[str],
) -> pd.DataFrame:
    """One row per (method, finding): claim, rule, numbers (every part as
    mean [95 % CI] (n) -> verdict) and verdict. `dual`: the methods with a background
    decoder and z1 (findings 1 and 6 apply to them, and to any method with such rows)."""
    rows = []
    for method in methods:
        parts = method_parts(rates, latent, method, scenarios, method in dual)
        for number, claim, rule, needs, _ in FINDINGS:
            got = parts[number]
            numbers = f"no {needs}" if got is None else "; ".join(p.text() for p in got)
            verdict = "not applicable" if got is None else combine([p.verdict for p in got])
            rows.append([method, number, claim, rule, numbers, verdict])
    return pd.DataFrame(rows, columns=list(COLUMNS))
