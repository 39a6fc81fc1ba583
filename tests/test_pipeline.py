"""End to end: the whole workflow on a tiny config, to the summary, findings and report.

One scenario with two disks (so per-disk strata appear), both models, two seeds, 62 x 57
images (sides that neither the cell size 6 nor the dual's pooling 30 divides: the models
pad them), one epoch: the numbers mean nothing, the plumbing is what is tested.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runner import snakemake

from fgbg.findings import VERDICTS
from fgbg.metrics.rates import rates_table
from fgbg.summary import EXCESS_METRICS, METRICS
from fgbg.targets import TARGETS

pytestmark = pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp is not recognized")
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCENARIO, MODELS, SEEDS = "x90_20", ("dual", "vae"), (0, 1)
FIGURES = ("summary", "separation", "cells_inside_bg_on")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipeline")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["image"] = {"height": 62, "width": 57}
    config["scenarios"] = {SCENARIO: config["scenarios"][SCENARIO]}
    config["models"] = {name: config["models"][name] for name in MODELS}
    config["data"].update(n_train=64, n_val=32, n_test=32, chunk_size=32)
    config["seeds"] = list(SEEDS)
    config["training"].update(epochs=1, batch_size=16, device="cpu")
    config["models"]["vae"]["training"] = {"batch_size": 8}  # a family's own pace
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir


def runs():
    return [(m, s) for m in MODELS for s in SEEDS]


@pytest.mark.slow
def test_per_run_tables(workdir):
    for model, seed in runs():
        run = workdir / f"results/eval/{SCENARIO}/{model}/seed{seed}"
        cells = pd.read_csv(run / "cells.csv")
        assert len(cells) == 32 * 10
        assert set(cells["stratum"]) <= {"outside", "inside_bg_off", "inside_bg_on"}
        rates = pd.read_csv(run / "rates.csv")
        assert "disk1_inside_bg_on" in set(rates["stratum"])
        # every rate is what cells.csv gives when recomputed
        recomputed = rates_table(cells, 0.5, n_disks=2)
        pd.testing.assert_frame_equal(recomputed, rates, check_dtype=False)
        on, pred = cells["truth"] == 1, cells["score"] > 0.5
        outside = cells["stratum"] == "outside"
        row = rates.set_index("stratum").loc["outside"]
        assert row["tp"] == (pred & on & outside).sum()
        assert row["fp"] == (pred & ~on & outside).sum()
        latent = pd.read_csv(run / "latent.csv", dtype={"dim": str})
        assert ("background" in set(latent["latent"])) == (model == "dual")


@pytest.mark.slow
def test_a_models_own_training_settings_reach_only_its_jobs(workdir):
    import json

    for model, seed in runs():
        run = json.loads(
            (workdir / f"results/models/{SCENARIO}/{model}/seed{seed}/run.json").read_text()
        )
        assert run["training"]["batch_size"] == (8 if model == "vae" else 16)
        assert run["training"]["epochs"] == 1 and "training" not in run["model"]


def pandas_rates(cells: pd.DataFrame) -> pd.DataFrame:
    """TPR and FPR per stratum, straight from cells.csv with pandas (independent of fgbg)."""
    groups = {s: cells["stratum"] == s for s in ("outside", "inside_bg_off", "inside_bg_on")}
    groups["inside"] = cells["stratum"].str.startswith("inside")
    groups["all"] = cells["stratum"].notna()
    for d in ("0", "1"):
        under = cells["disks"].str.split("+").map(lambda ds, d=d: d in ds)
        for s in ("inside_bg_off", "inside_bg_on", "inside"):
            groups[f"disk{d}_{s}"] = under & groups[s]
    rows = {}
    for name, mask in groups.items():
        c = cells[mask]
        on, pred = c["truth"] == 1, c["score"] > 0.5
        rows[name] = {
            "tpr": (pred & on).sum() / on.sum() if on.any() else np.nan,
            "fpr": (pred & ~on).sum() / (~on).sum() if (~on).any() else np.nan,
        }
    return pd.DataFrame(rows).T


@pytest.mark.slow
def test_summary_equals_the_mean_of_rates_recomputed_from_cells(workdir):
    summary = pd.read_csv(workdir / "results/summary.csv")
    assert list(summary.columns) == [
        "scenario", "model", "stratum", "metric", "mean", "std", "ci95_low", "ci95_high",
        "n_seeds",
    ]  # fmt: skip
    passes = {"runs_passing", "runs_not_judged"} | {f"pass_{t.metric}_{t.stratum}" for t in TARGETS}
    assert (
        set(summary["metric"])
        == {*METRICS, *EXCESS_METRICS, "leakage", "leakage_ratio", "pixel_ap"} | passes
    )
    # the distance from the ceiling: each seed's log loss minus bayes's on the same images
    excess = summary[summary["metric"] == "log_loss_excess"].set_index(["model", "stratum"])
    assert (excess.loc["bayes", "mean"] == 0).all()
    for model in MODELS:
        gaps = [
            pd.read_csv(workdir / f"results/eval/{SCENARIO}/{name}/seed{s}/rates.csv")
            .set_index("stratum")
            .loc["inside_bg_on", "log_loss"]
            for s in SEEDS
            for name in (model, "bayes")
        ]
        expected = np.mean(np.array(gaps[0::2]) - np.array(gaps[1::2]))
        assert excess.loc[(model, "inside_bg_on"), "mean"] == pytest.approx(expected)
    assert set(summary["model"]) == {*MODELS, "raw", "neuropil", "truth", "bayes", "opening", "nmf"}
    checked = 0
    for model in MODELS:
        run = workdir / f"results/eval/{SCENARIO}/{model}"
        per_seed = [pandas_rates(pd.read_csv(run / f"seed{s}/cells.csv")) for s in SEEDS]
        mine = summary[summary["model"] == model].set_index(["stratum", "metric"])
        for stratum in per_seed[0].index:
            for metric in ("tpr", "fpr"):
                values = np.array([t.loc[stratum, metric] for t in per_seed], dtype=float)
                expected = np.nanmean(values) if not np.isnan(values).all() else np.nan
                np.testing.assert_allclose(mine.loc[(stratum, metric), "mean"], expected)
                assert mine.loc[(stratum, metric), "n_seeds"] == (~np.isnan(values)).sum()
                checked += 1
    assert checked == 2 * 11 * 2
    wide = pd.read_csv(workdir / "results/summary_wide.csv")
    assert list(wide.columns) == ["model", "stratum", "metric", SCENARIO]


@pytest.mark.slow
def test_findings_and_figures(workdir):
    findings = pd.read_csv(workdir / "results/findings.csv")
    references = yaml.safe_load((workdir / "config.yaml").read_text())["references"]
    methods = [*MODELS, *references]  # config order
    assert findings["model"].tolist() == [m for m in methods for _ in range(6)]
    assert findings["finding"].tolist() == [1, 2, 3, 4, 5, 6] * len(methods)
    assert set(findings["verdict"]) <= set(VERDICTS)
    figures = [workdir / f"results/figures/{name}.png" for name in FIGURES]
    figures += [workdir / f"results/figures/cell_map_{SCENARIO}_{m}.png" for m in methods]
    figures += [workdir / f"results/figures/{SCENARIO}/{m}/training_curves.png" for m in MODELS]
    # a model is drawn for the first seed only: the tables and summary figures hold every seed
    figures += [
        workdir / f"results/figures/{SCENARIO}/{m}/seed{SEEDS[0]}/{name}.png"
        for m in MODELS
        for name in ("reconstruction", "traversal")
    ]
    for path in figures:
        assert path.stat().st_size > 5000, path
    assert not (workdir / f"results/figures/{SCENARIO}/dual/seed{SEEDS[1]}").exists()
    assert (workdir / f"results/benchmarks/evaluate/{SCENARIO}/seed0.tsv").exists()
    assert "done in" in (workdir / f"results/logs/evaluate/{SCENARIO}/seed0.log").read_text()


@pytest.mark.slow
def test_report_and_nothing_left_to_do(workdir):
    result = snakemake(workdir, "--report", "results/report.html")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = workdir / "results/report.html"
    assert report.stat().st_size > 100_000
    result = snakemake(workdir, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_references_and_separation_rows(workdir):
    summary = pd.read_csv(workdir / "results/summary.csv")
    mean = summary.set_index(["model", "stratum", "metric"])["mean"]
    for method in (*MODELS, "raw", "neuropil", "truth", "bayes", "opening", "nmf"):
        for region, metric in [
            ("active_disks", "leakage"),
            ("disk0", "leakage"),
            ("disk1", "leakage"),
            ("inside_active_disks", "pixel_ap"),
            ("outside_active_disks", "pixel_ap"),
        ]:
            assert (method, region, metric) in mean.index
    assert mean["raw", "inside_bg_on", "auroc"] >= 0.99
    assert mean["raw", "active_disks", "leakage"] > 0.8
    truth = summary[summary["model"] == "truth"].set_index(["stratum", "metric"])["mean"]
    assert (truth.xs("auroc", level="metric").dropna() == 1).all()
    assert (truth.xs("fpr", level="metric").dropna() == 0).all()
    assert truth["active_disks", "leakage"] == 0
    # the exact posterior: it ranks the cells under a disk and leaves the disk out
    assert mean["bayes", "inside_bg_on", "auroc"] >= 0.99
    assert mean["bayes", "active_disks", "leakage"] < 0.01
    cells = pd.read_csv(workdir / "results/summary_cells.csv")
    assert set(cells["model"]) == {*MODELS, "raw", "neuropil", "truth", "bayes", "opening", "nmf"}
    bounded = summary[~summary["metric"].isin(EXCESS_METRICS)]  # an excess can be < 0
    assert (cells["ci95_high"].dropna() <= 1).all() and (bounded["ci95_low"].dropna() >= 0).all()
