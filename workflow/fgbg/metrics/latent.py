"""What the latent blocks encode, and how well the background branch reproduces g(x).

Latent codes are posterior means (sample, dim) per block (``z1``, ``z2`` for the dual VAE,
``z`` for the baseline; ``all`` concatenates the blocks when there are several).
Targets are each disk's activity (``disk{d}``) and each cell's activity (``cell{k}``).

- ``auroc`` (one dimension): AUROC of that dimension's value against the target, taken as
  max(AUROC, 1 - AUROC) because a latent axis has no preferred sign (0.5 = no information,
  1 = perfect separation).
- ``probe_accuracy`` / ``probe_auroc`` (a block): a standardised logistic-regression probe,
  cross-validated (stratified k-fold, k <= 5, fixed seed), scored on held-out folds;
  ``chance_accuracy`` is the majority-class rate, the accuracy of predicting a constant.
- Background branch: ``mae`` (mean absolute error) and ``bce`` (mean binary cross-entropy,
  which includes the target's own entropy) of the background decoder's Bernoulli mean
  against g(x).

Anything that cannot be computed (a target with one class, too few samples per class for
two folds) is NaN. Blocks of more than ``MAX_PROBED_DIMS`` dimensions (the layered model's
map of patch latents, 200 dimensions) are not probed: per-dimension AUROCs of a spatial map
say nothing its foreground output does not, and their probes were 90 % of an evaluation
job's time.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fgbg.metrics.rates import auroc

LATENT_COLUMNS = ("latent", "dim", "target", "metric", "value")
MAX_FOLDS = 5
MAX_PROBED_DIMS = 16


def symmetric_auroc(truth: np.ndarray, values: np.ndarray) -> float:
    """max(AUROC, 1 - AUROC): how well one latent axis separates the classes, either sign."""
    a = auroc(truth, values)
    return max(a, 1 - a) if np.isfinite(a) else a


def probe(truth: np.ndarray, codes: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Cross-validated logistic-regression probe: held-out accuracy and AUROC."""
    truth = np.asarray(truth).astype(int)
    counts = np.bincount(truth, minlength=2)
    chance = counts.max() / counts.sum() if counts.sum() else float("nan")
    folds = min(MAX_FOLDS, int(counts.min()))
    if folds < 2:
        return {
            "probe_accuracy": float("nan"),
            "probe_auroc": float("nan"),
            "chance_accuracy": chance,
        }
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on separable targets
        proba = cross_val_predict(model, codes, truth, cv=cv, method="predict_proba")[:, 1]
    return {
        "probe_accuracy": float(((proba > 0.5) == truth).mean()),
        "probe_auroc": auroc(truth, proba),
        "chance_accuracy": float(chance),
    }


def targets(disk_active: np.ndarray, cell_active: np.ndarray) -> dict[str, np.ndarray]:
    """Named binary targets: disk0.., then cell0.."""
    named = {f"disk{d}": np.asarray(disk_active)[:, d] for d in range(np.shape(disk_active)[1])}
    named.update(
        {f"cell{k}": np.asarray(cell_active)[:, k] for k in range(np.shape(cell_active)[1])}
    )
    return named


def latent_table(
    codes: dict[str, np.ndarray],
    disk_active: np.ndarray,
    cell_active: np.ndarray,
    seed: int = 0,
) -> pd.DataFrame:
    """Tidy rows (latent, dim, target, metric, value) for every block, dimension and target.

    `dim` is the dimension's index within its block, or ``block`` for the probe on the
    whole block.
    """
    blocks = {
        name: np.asarray(c, dtype=np.float64).reshape(len(c), -1) for name, c in codes.items()
    }
    blocks = {name: b for name, b in blocks.items() if b.shape[1] <= MAX_PROBED_DIMS}
    if len(blocks) > 1:
        blocks["all"] = np.concatenate(list(blocks.values()), axis=1)
    rows = []
    for target, truth in targets(disk_active, cell_active).items():
        for name, block in blocks.items():
            if name != "all":
                for dim in range(block.shape[1]):
                    value = symmetric_auroc(truth, block[:, dim])
                    rows.append((name, str(dim), target, "auroc", value))
            for metric, value in probe(truth, block, seed).items():
                rows.append((name, "block", target, metric, value))
    return pd.DataFrame(rows, columns=list(LATENT_COLUMNS))


def background_error(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """MAE and BCE of the background decoder's Bernoulli mean against g(x)."""
    raw = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    p = np.clip(raw, 1e-7, 1 - 1e-7)  # keeps the logs finite
    return {
        "mae": float(np.abs(raw - t).mean()),
        "bce": float(-(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()),
    }


def background_table(prediction: np.ndarray, target: np.ndarray) -> pd.DataFrame:
    rows = [
        ("background", "block", "g(x)", metric, value)
        for metric, value in background_error(prediction, target).items()
    ]
    return pd.DataFrame(rows, columns=list(LATENT_COLUMNS))
