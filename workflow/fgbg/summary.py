"""Aggregate the per-run tables across seeds: mean, sd and a t-interval per cell of the table.

Reads only per-run tables (rates.csv, separation.csv, cell_rates.csv, latent.csv); knows
nothing of models or training. Every interval of a quantity bounded by [0, 1] (rates, AUROC,
AP, leakage, probe scores, MAE) is clipped to [0, 1]: the t-interval is symmetric, so near 0
or 1 with few seeds it would otherwise run past the possible values; a leakage ratio is only
bounded below (by 0).

Pass counts (fgbg.targets, SPEC section 9) are rows of summary.csv too, after each
(scenario, model)'s metrics: stratum ``targets``, metric ``runs_passing`` (every target met),
``runs_not_judged`` (some target without a value, none failed) and per target
``pass_<metric>_<stratum>`` (e.g. ``pass_auroc_inside_bg_on``; the stratum is kept out of
the stratum column so that per-region tables and figures never meet these rows). There
``mean`` is the fraction k / n of runs, ``n_seeds`` is n (so k = mean x n_seeds), ``std`` is
empty and the interval is the exact binomial (Clopper-Pearson) 95 % interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from fgbg.metrics.rates import RATE_COLUMNS, STRATA, per_cell_rates, stratum_names
from fgbg.targets import ALL, EXCESS, clopper_pearson, excess_over_ceiling, pass_counts

RUN_KEYS = ("scenario", "model", "seed")
RATE_METRICS = ("tpr", "fpr", "auroc", "balanced_accuracy")
METRICS = (*RATE_METRICS, "log_loss", *(f"{m}_z2_off" for m in RATE_METRICS))
EXCESS_METRICS = (f"log_loss{EXCESS}",)
SEPARATION_METRICS = ("leakage", "leakage_ratio", "pixel_ap")
PASS_STRATUM = "targets"
PASS_METRICS = ("runs_passing", "runs_not_judged")
STAT_COLUMNS = ("mean", "std", "ci95_low", "ci95_high", "n_seeds")
# Every summarised metric lies in [0, 1] (its interval is clipped there) except these.
UNBOUNDED = ("bce", *EXCESS_METRICS)  # an excess over the ceiling can be < 0 on a sample
BOUNDS = {"leakage_ratio": (0.0, math.inf), "log_loss": (0.0, math.inf)}
assert set(RATE_METRICS) <= set(RATE_COLUMNS)


def t_interval(values: Iterable[float], level: float = 0.95, bounds=None) -> dict[str, float]:
    """Mean, sample sd and the two-sided t confidence interval of the non-NaN values.

    n < 2 gives sd and interval NaN; n = 0 gives a NaN mean too. `bounds` (low, high): the
    range the quantity cannot leave (a rate: 0 and 1); the interval is clipped to it.
    """
    v = np.asarray([x for x in values if not pd.isna(x)], dtype=np.float64)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return {
            "mean": mean,
            "std": math.nan,
            "ci95_low": math.nan,
            "ci95_high": math.nan,
            "n_seeds": n,
        }
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return {"mean": mean, "std": std, "ci95_low": low, "ci95_high": high, "n_seeds": n}


def read_runs(runs: Iterable[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Concatenate per-run CSVs; runs are (scenario, model, seed, path)."""
    frames = []
    for scenario, model, seed, path in runs:
        table = pd.read_csv(path, keep_default_na=True, dtype={"dim": str})
        table.insert(0, "seed", int(seed))
        table.insert(0, "model", model)
        table.insert(0, "scenario", scenario)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _order(frame: pd.DataFrame, column: str, order: list[str]) -> pd.DataFrame:
    known = list(dict.fromkeys([*order, *frame[column].unique()]))
    frame[column] = pd.Categorical(frame[column], categories=known, ordered=True)
    return frame


def _bounds(metric: str):
    return None if metric in UNBOUNDED else BOUNDS.get(metric, (0, 1))


def _aggregate(long: pd.DataFrame, keys: list[str], orders: dict[str, list[str]]) -> pd.DataFrame:
    long = long.copy()
    for column, order in orders.items():
        long = _order(long, column, order)
    metric_at = keys.index("metric")
    rows = [
        {
            **dict(zip(keys, key, strict=True)),
            **t_interval(group["value"], bounds=_bounds(key[metric_at])),
        }
        for key, group in long.groupby(keys, sort=True, observed=True)
    ]
    out = pd.DataFrame(rows, columns=[*keys, *STAT_COLUMNS])
    for column in orders:
        out[column] = out[column].astype(str)
    return out


def stratum_order(strata: Iterable[str]) -> list[str]:
    """Base strata, pooled strata, per-disk strata by disk index, then anything unknown."""
    strata = set(strata)
    disks = [int(s[4:].split("_")[0]) for s in strata if s.startswith("disk")]
    names = stratum_names(max(disks) + 1 if disks else 0)
    return names + sorted(strata - set(names))


def pass_rows(long: pd.DataFrame) -> pd.DataFrame:
    """The pass counts (fgbg.targets) as summary rows (see the module docstring)."""
    counts = pass_counts(long)
    rows = []
    for c in counts.itertuples(index=False):
        stat = {"std": math.nan, "ci95_low": c.ci95_low, "ci95_high": c.ci95_high, "n_seeds": c.n}
        if c.target == ALL:
            rows.append((c.scenario, c.model, PASS_STRATUM, "runs_passing", c.k / c.n, stat))
            share = c.not_judged / c.n
            low, high = clopper_pearson(c.not_judged, c.n)
            judged = {**stat, "ci95_low": low, "ci95_high": high}
            rows.append((c.scenario, c.model, PASS_STRATUM, "runs_not_judged", share, judged))
        else:
            metric = f"pass_{c.metric}_{c.stratum}"
            rows.append((c.scenario, c.model, PASS_STRATUM, metric, c.k / c.n, stat))
    return pd.DataFrame(
        [{**dict(zip(RUN_KEYS[:2], r[:2], strict=True)), "stratum": r[2], "metric": r[3],
          "mean": r[4], **r[5]} for r in rows],
        columns=["scenario", "model", "stratum", "metric", *STAT_COLUMNS],
    )  # fmt: skip


def is_pass_metric(metric: str) -> bool:
    return metric in PASS_METRICS or metric.startswith("pass_")


def summarise(
    rates, separation, scenarios: list[str], models: list[str], passes: bool = True
) -> pd.DataFrame:
    """summary.csv: the rates per stratum (with each run's log loss above the ceiling's of
    the same run, `log_loss_excess`), then the separation metrics per region (in the
    `stratum` column), one row per (scenario, model, stratum, metric) over seeds; then (with
    `passes`) each (scenario, model)'s pass counts (see the module docstring)."""
    if separation is None:
        separation = pd.DataFrame(columns=[*RUN_KEYS, "region", "metric", "value"])
    measured = rates.melt(
        id_vars=[*RUN_KEYS, "stratum"],
        value_vars=[m for m in METRICS if m in rates],  # tables before the log loss lack it
        var_name="metric",
    )
    long = pd.concat(
        [
            measured,
            excess_over_ceiling(measured, "log_loss"),
            separation.rename(columns={"region": "stratum"})[
                [*RUN_KEYS, "stratum", "metric", "value"]
            ],
        ],
        ignore_index=True,
    )
    regions = list(dict.fromkeys(separation["region"]))
    orders = {
        "scenario": scenarios,
        "model": models,
        "stratum": stratum_order(set(long["stratum"]) - set(regions)) + regions,
        "metric": [*METRICS, *EXCESS_METRICS, *SEPARATION_METRICS],
    }
    table = _aggregate(long, ["scenario", "model", "stratum", "metric"], orders)
    if not passes or long.empty:
        return table
    table = pd.concat([table, pass_rows(long)], ignore_index=True)
    for column in ("scenario", "model"):
        table = _order(table, column, orders[column])
    table = table.sort_values(["scenario", "model"], kind="stable").reset_index(drop=True)
    for column in ("scenario", "model"):
        table[column] = table[column].astype(str)
    return table


def summarise_rates(rates: pd.DataFrame, scenarios: list[str], models: list[str]) -> pd.DataFrame:
    """The rates part of summary.csv alone (no pass counts)."""
    return summarise(rates, None, scenarios, models, passes=False)


def summarise_cells(cell_rates: pd.DataFrame, scenarios: list[str], models: list[str]):
    """summary_cells.csv: per-cell rates over seeds, one row per (scenario, model, cell,
    stratum, metric), with the cell's disk coverage."""
    long = cell_rates.melt(
        id_vars=[*RUN_KEYS, "cell", "stratum", "disk_coverage"],
        value_vars=["tpr", "fpr", "auroc"],
        var_name="metric",
    )
    long["cell"] = long["cell"].astype(str)
    orders = {
        "scenario": scenarios,
        "model": models,
        "cell": sorted(long["cell"].unique(), key=int),
        "stratum": list(STRATA),
        "metric": ["tpr", "fpr", "auroc"],
    }
    keys = ["scenario", "model", "cell", "stratum", "disk_coverage", "metric"]
    out = _aggregate(long.assign(disk_coverage=long["disk_coverage"].round(6)), keys, orders)
    return out.assign(cell=out["cell"].astype(int))


def summarise_latent(latent: pd.DataFrame, scenarios: list[str], models: list[str]) -> pd.DataFrame:
    """Tidy summary of latent.csv: one row per (scenario, model, latent, dim, target, metric)."""
    keys = ["latent", "dim", "target", "metric"]
    first_seen = {k: list(dict.fromkeys(latent[k].astype(str))) for k in keys}
    long = latent.assign(dim=latent["dim"].astype(str))
    orders = {"scenario": scenarios, "model": models, **first_seen}
    return _aggregate(long, ["scenario", "model", *keys], orders)


def format_pass(fraction: float, n: float, low: float, high: float) -> str:
    """'3 of 5 [0.15, 0.95]': a pass count row of the summary (k = fraction x n)."""
    if pd.isna(fraction) or pd.isna(n):
        return ""
    return f"{round(fraction * n)} of {int(n)} [{low:.2f}, {high:.2f}]"


def format_cell(mean: float, low: float, high: float, digits: int = 3) -> str:
    """'0.953 ± 0.012' (mean ± half-width of the 95 % CI), '0.953' for one seed, '' for NaN."""
    if pd.isna(mean):
        return ""
    if pd.isna(low) or pd.isna(high):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def wide(summary: pd.DataFrame, scenarios: list[str]) -> pd.DataFrame:
    """The summary pivoted: rows (model, stratum, metric), one column per scenario."""
    keys = ["model", "stratum", "metric"]
    columns = ["metric", "mean", "ci95_low", "ci95_high", "n_seeds"]
    table = summary.assign(
        cell=[
            format_pass(m, n, lo, hi) if is_pass_metric(metric) else format_cell(m, lo, hi)
            for metric, m, lo, hi, n in zip(*(summary[c] for c in columns), strict=True)
        ]
    )
    orders = {
        "model": list(dict.fromkeys(summary["model"])),
        "stratum": stratum_order(summary["stratum"].unique()),
        "metric": [*METRICS, *sorted(set(summary["metric"]) - set(METRICS))],
    }
    out = table.pivot(index=keys, columns="scenario", values="cell").reset_index()
    for column, order in orders.items():
        out[column] = pd.Categorical(out[column], categories=order, ordered=True)
    out = out.sort_values(keys).reset_index(drop=True)
    for column in orders:
        out[column] = out[column].astype(str)
    present = [s for s in scenarios if s in out.columns]
    out = out[[*keys, *present]].fillna("")
    out.columns.name = None
    return out


def per_cell_means(cells: list[pd.DataFrame], threshold: float, score: str) -> pd.DataFrame:
    """Each cell's TPR and FPR per run (cells.csv tables), averaged over the runs."""
    per_run = [per_cell_rates(table, threshold, score) for table in cells]
    return pd.concat(per_run).groupby("cell", as_index=False)[["tpr", "fpr"]].mean()
