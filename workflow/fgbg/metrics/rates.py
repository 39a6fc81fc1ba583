"""Per-cell detection rates, by stratum of the background.

Every (image, cell) pair falls in one stratum:

- ``outside``: the cell overlaps no disk;
- ``inside_bg_off``: it overlaps a disk, and every disk it overlaps is off in this image;
- ``inside_bg_on``: some disk it overlaps is on.

``inside`` pools the two inside strata and ``all`` pools everything. With more than one disk,
``disk{d}_inside_bg_off`` / ``disk{d}_inside_bg_on`` / ``disk{d}_inside`` restrict the
inside strata to the cells that overlap disk ``d`` (its index in the scenario's disk list).

A cell is predicted active when its score exceeds the threshold. TPR = tp / positives,
FPR = fp / negatives, AUROC = sklearn's ``roc_auc_score`` of score against truth. The log
loss (sklearn's ``log_loss``, nats per cell, scores clipped to [LOG_LOSS_CLIP, 1 -
LOG_LOSS_CLIP]) reads the score as the probability that the cell is active: how well
calibrated it is, not only how it ranks; NaN for scores that are not probabilities
(outside [0, 1], e.g. neuropil's). A rate
whose denominator is zero, and AUROC on a stratum without both classes, is NaN: an empty
rate, never a made-up number. Counts sit next to every rate so that rates can be pooled
and checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

STRATA = ("outside", "inside_bg_off", "inside_bg_on")
POOLED = {"inside": ("inside_bg_off", "inside_bg_on"), "all": STRATA}
SCORES = {"": "score", "_z2_off": "score_z2_off"}
RATE_COLUMNS = ("tp", "fp", "tpr", "fpr", "balanced_accuracy", "auroc")
LOG_LOSS_CLIP = 1e-4  # a confident miss costs at most log(1e4) = 9.2 nats
CELL_COLUMNS = ("sample", "cell", "truth", "score", "score_z2_off", "stratum", "disks", "novel")


def strata(overlap: np.ndarray, disk_active: np.ndarray) -> np.ndarray:
    """Stratum name of every (sample, cell).

    overlap: bool (cell, disk), the cell has a pixel in the disk; disk_active: (sample, disk).
    """
    overlap = np.asarray(overlap, dtype=bool)
    active = np.asarray(disk_active, dtype=bool)
    inside = overlap.any(axis=1)[None, :]  # (1, cell)
    any_on = (active.astype(int) @ overlap.T.astype(int)) > 0  # (sample, cell)
    out = np.where(any_on, STRATA[2], STRATA[1]).astype(object)
    out[:, ~inside[0]] = STRATA[0]
    return out


def disks_label(overlap_row: np.ndarray) -> str:
    """'0', '0+1' ... for the disks a cell overlaps, 'none' when it overlaps none."""
    idx = np.flatnonzero(overlap_row)
    return "+".join(str(i) for i in idx) if len(idx) else "none"


def cell_table(
    cell_active: np.ndarray,
    score: np.ndarray,
    score_z2_off: np.ndarray,
    overlap: np.ndarray,
    disk_active: np.ndarray,
    novel: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (sample, cell): truth, both scores, stratum, disks overlapped, and
    whether the image is novel (occurs in no training split; True when not known)."""
    truth = np.asarray(cell_active).astype(np.int8)
    n_samples, n_cells = truth.shape
    labels = np.array([disks_label(row) for row in np.asarray(overlap, dtype=bool)], dtype=object)
    return pd.DataFrame(
        {
            "sample": np.repeat(np.arange(n_samples), n_cells),
            "cell": np.tile(np.arange(n_cells), n_samples),
            "truth": truth.ravel(),
            "score": np.asarray(score, dtype=np.float64).ravel(),
            "score_z2_off": np.asarray(score_z2_off, dtype=np.float64).ravel(),
            "stratum": strata(overlap, disk_active).ravel(),
            "disks": np.tile(labels, n_samples),
            "novel": np.repeat(
                np.ones(n_samples, bool) if novel is None else np.asarray(novel, bool), n_cells
            ),
        },
        columns=list(CELL_COLUMNS),
    )


def auroc(truth: np.ndarray, score: np.ndarray) -> float:
    """roc_auc_score, or NaN when `truth` lacks positives or negatives (or scores are NaN)."""
    truth = np.asarray(truth)
    score = np.asarray(score, dtype=np.float64)
    if truth.size == 0 or truth.min() == truth.max() or np.isnan(score).any():
        return float("nan")
    return float(roc_auc_score(truth, score))


def cell_log_loss(truth: np.ndarray, score: np.ndarray) -> float:
    """Mean cross-entropy (nats) of the scores as probabilities of the true states; NaN when
    a score lies outside [0, 1] or is NaN, or there are no cells."""
    truth = np.asarray(truth).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    if truth.size == 0 or np.isnan(score).any() or score.min() < 0 or score.max() > 1:
        return float("nan")
    clipped = np.clip(score, LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
    return float(log_loss(truth, clipped, labels=[False, True]))


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def rates(truth: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """Counts and rates of one group of (image, cell) pairs."""
    truth = np.asarray(truth).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    pred = score > threshold
    positives, negatives = int(truth.sum()), int((~truth).sum())
    tp, fp = int((pred & truth).sum()), int((pred & ~truth).sum())
    tpr, fpr = _ratio(tp, positives), _ratio(fp, negatives)
    if np.isnan(score).any():  # no score, no prediction: empty rates, not zeros
        tp = fp = tpr = fpr = float("nan")
    return {
        "n": positives + negatives,
        "positives": positives,
        "negatives": negatives,
        "tp": tp,
        "fp": fp,
        "tpr": tpr,
        "fpr": fpr,
        "balanced_accuracy": (tpr + 1 - fpr) / 2,
        "auroc": auroc(truth, score),
        "log_loss": cell_log_loss(truth, score),
    }


def stratum_masks(cells: pd.DataFrame, n_disks: int) -> dict[str, np.ndarray]:
    """Row masks of every reported stratum, in the reporting order."""
    stratum = cells["stratum"].to_numpy()
    masks = {name: stratum == name for name in STRATA}
    for name, parts in POOLED.items():
        masks[name] = np.isin(stratum, parts)
    if n_disks > 1:
        disks = cells["disks"].astype(str).str.split("+")
        for d in range(n_disks):
            under = disks.map(lambda ds, d=str(d): d in ds).to_numpy(dtype=bool)
            for name in ("inside_bg_off", "inside_bg_on", "inside"):
                masks[f"disk{d}_{name}"] = under & masks[name]
    return masks


def stratum_names(n_disks: int) -> list[str]:
    names = [*STRATA, *POOLED]
    if n_disks > 1:
        names += [
            f"disk{d}_{name}"
            for d in range(n_disks)
            for name in ("inside_bg_off", "inside_bg_on", "inside")
        ]
    return names + [f"{name}_novel" for name in [*STRATA, *POOLED]]


def rates_table(cells: pd.DataFrame, threshold: float, n_disks: int) -> pd.DataFrame:
    """One row per stratum: counts, TPR, FPR, balanced accuracy, AUROC and log loss for the
    score, and the rates (suffix ``_z2_off``) for the score with the background latent
    switched off. With a ``novel`` column, the base and pooled strata again restricted to
    the held-out images that occur in no training split (``{stratum}_novel``)."""
    truth = cells["truth"].to_numpy()
    masks = stratum_masks(cells, n_disks)
    if "novel" in cells:
        novel = cells["novel"].to_numpy(dtype=bool)
        masks |= {f"{name}_novel": masks[name] & novel for name in [*STRATA, *POOLED]}
    rows = []
    for name, mask in masks.items():
        row = {"stratum": name}
        for suffix, column in SCORES.items():
            result = rates(truth[mask], cells[column].to_numpy()[mask], threshold)
            if not suffix:
                row.update(result)
            else:
                row.update({f"{key}{suffix}": result[key] for key in RATE_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


def per_cell_rates(cells: pd.DataFrame, threshold: float, score: str = "score") -> pd.DataFrame:
    """TPR, FPR and their counts for each cell, over all its images (for the per-cell map)."""
    rows = []
    for cell, group in cells.groupby("cell", sort=True):
        rows.append({"cell": cell, **rates(group["truth"], group[score], threshold)})
    return pd.DataFrame(rows)


def cell_rates_table(cells: pd.DataFrame, threshold: float, coverage: np.ndarray) -> pd.DataFrame:
    """One row per (cell, stratum) the cell occurs in: counts, TPR, FPR, AUROC, and the
    fraction of the cell's pixels inside the disks it overlaps (`disk_coverage`: 1 = fully
    covered, 0 = outside), so that a partially covered cell cannot hide in a pooled rate."""
    rows = []
    for (cell, stratum), group in cells.groupby(["cell", "stratum"], sort=False):
        result = rates(group["truth"], group["score"], threshold)
        rows.append({"cell": cell, "stratum": stratum, "disk_coverage": coverage[cell], **result})
    table = pd.DataFrame(rows)
    table["stratum"] = pd.Categorical(table["stratum"], categories=list(STRATA), ordered=True)
    return table.sort_values(["cell", "stratum"]).astype({"stratum": str}).reset_index(drop=True)
