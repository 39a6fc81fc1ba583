"""Aggregate the per-run tables across seeds: mean, sd and a t-interval per cell of the table.

Reads only per-run tables (rates.csv, separation.csv, cell_rates.csv, latent.csv); knows
nothing of models or training. Every interval of a quantity bounded by [0, 1] (rates, AUROC,
AP, leakage, probe scores, MAE) is clipped to [0, 1]: the t-interval is symmetric, so near 0
or 1 with few seeds it would otherwise run past the possible values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from fgbg.metrics.rates import RATE_COLUMNS, STRATA, per_cell_rates, stratum_names

RUN_KEYS = ("scenario", "model", "seed")
RATE_METRICS = ("tpr", "fpr", "auroc", "balanced_accuracy")
METRICS = (*RATE_METRICS, *(f"{m}_z2_off" for m in RATE_METRICS))
SEPARATION_METRICS = ("leakage", "pixel_ap")
STAT_COLUMNS = ("mean", "std", "ci95_low", "ci95_high", "n_seeds")
# Every summarised metric lies in [0, 1] (its interval is clipped there) except these.
UNBOUNDED = ("bce",)
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


def _aggregate(long: pd.DataFrame, keys: list[str], orders: dict[str, list[str]]) -> pd.DataFrame:
    long = long.copy()
    for column, order in orders.items():
        long = _order(long, column, order)
    metric_at = keys.index("metric")
    rows = [
        {
            **dict(zip(keys, key, strict=True)),
            **t_interval(group["value"], bounds=None if key[metric_at] in UNBOUNDED else (0, 1)),
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


def summarise(rates, separation, scenarios: list[str], models: list[str]) -> pd.DataFrame:
    """summary.csv: the rates per stratum, then the separation metrics per region (in the
    `stratum` column), one row per (scenario, model, stratum, metric) over seeds."""
    if separation is None:
        separation = pd.DataFrame(columns=[*RUN_KEYS, "region", "metric", "value"])
    long = pd.concat(
        [
            rates.melt(id_vars=[*RUN_KEYS, "stratum"], value_vars=list(METRICS), var_name="metric"),
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
        "metric": [*METRICS, *SEPARATION_METRICS],
    }
    return _aggregate(long, ["scenario", "model", "stratum", "metric"], orders)


def summarise_rates(rates: pd.DataFrame, scenarios: list[str], models: list[str]) -> pd.DataFrame:
    """The rates part of summary.csv alone."""
    return summarise(rates, None, scenarios, models)


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
    table = summary.assign(
        cell=[
            format_cell(m, lo, hi)
            for m, lo, hi in zip(
                summary["mean"], summary["ci95_low"], summary["ci95_high"], strict=True
            )
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
