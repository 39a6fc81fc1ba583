"""The README's Results come from the run's tables, unaltered; its comparative sentences
are generated from paired intervals and say "higher" only when the interval excludes 0."""

import pandas as pd

from fgbg_tools.results_pages import comparison, main


def _wide(tmp_path):
    pd.DataFrame(
        {
            "model": ["dual", "dual", "dual", "raw"],
            "stratum": ["outside", "outside", "all", "active_disks"],
            "metric": ["auroc", "balanced_accuracy", "tpr", "leakage"],
            "x90": ["0.9 ± 0.1", "0.8 ± 0.1", "0.7 ± 0.1", "0.84 ± 0.01"],
        }
    ).to_csv(tmp_path / "summary_wide.csv", index=False)
    pd.DataFrame(
        {
            "model": ["dual", "dual", "raw"],
            "finding": [1, 2, 1],
            "claim": ["a", "b", "a"],
            "rule": ["r", "r", "r"],
            "numbers": ["x = 1 [0, 2] (n=5)", "y|z", ""],
            "verdict": ["supported", "inconclusive", "not applicable"],
        }
    ).to_csv(tmp_path / "findings.csv", index=False)


def test_tables_hold_the_headline_rows_and_the_applicable_findings(tmp_path):
    _wide(tmp_path)
    headline, findings, knowledge = main(tmp_path).split("\n\n")
    assert headline.splitlines()[2] == "| dual | outside | auroc | 0.9 ± 0.1 |"
    assert headline.splitlines()[3] == "| raw | active_disks | leakage | 0.84 ± 0.01 |"
    assert len(headline.splitlines()) == 4  # header, rule, the two headline rows
    assert findings.splitlines()[2] == "| dual | 1 | supported | x = 1 [0, 2] (n=5) |"
    assert findings.splitlines()[3] == "| dual | 2 | inconclusive | y\\|z |"
    assert len(findings.splitlines()) == 4  # "not applicable" rows are left out
    assert (
        knowledge.splitlines()[0]
        == "| method | cell size | disk scale | cell outlines | activity |"
    )


def _runs(a_values, b_values):
    rows = []
    for model, values in (("a", a_values), ("b", b_values)):
        for seed, value in enumerate(values):
            rows.append(("x90", model, seed, "inside_bg_on", "auroc", value))
    return pd.DataFrame(rows, columns=["scenario", "model", "seed", "stratum", "metric", "value"])


def test_a_sentence_says_higher_only_when_the_paired_interval_excludes_zero():
    clear = comparison(_runs([0.9, 0.8, 0.95], [0.6, 0.5, 0.66]), "x90", "a", "b",
                       "inside_bg_on", "auroc", True)  # fmt: skip
    assert clear["verdict"] == "a higher (better)" and clear["a - b [95 % CI] (n)"][0] == "+"
    # the same means, but the per-seed differences disagree in sign: no claim
    noisy = comparison(_runs([0.9, 0.3, 0.95], [0.6, 0.9, 0.66]), "x90", "a", "b",
                       "inside_bg_on", "auroc", True)  # fmt: skip
    assert noisy["verdict"].startswith("not resolved") and "higher" not in noisy["verdict"]
    # identical values in every seed: a zero-width interval is no verdict
    same = comparison(_runs([0.7, 0.7], [0.7, 0.7]), "x90", "a", "b", "inside_bg_on", "auroc", True)
    assert same["verdict"].startswith("no verdict")


def test_convergence_reports_a_loss_still_falling(tmp_path):
    from fgbg_tools.results_pages import convergence

    for seed, tail in ((0, [100.0] * 12), (1, [100.0 - 2 * i for i in range(12)])):
        run = tmp_path / f"models/x90/dual/seed{seed}"
        run.mkdir(parents=True)
        pd.DataFrame({"epoch": range(1, 13), "val_loss": tail}).to_csv(run / "history.csv")
    row = convergence(tmp_path).iloc[0]
    assert row["runs"] == 2
    assert row["change_last_10_max"] == 0  # the flat run
    assert row["change_last_10_min"] == (78 - 98) / 98  # the falling one is not flat
    assert row["spread_max"] == (86 - 78) / 82


def test_targets_say_met_only_when_the_interval_is_past_the_bound():
    from fgbg_tools.results_pages import targets

    def row(metric, stratum, mean, low, high, n=5, model="m"):
        return {"scenario": "x90", "model": model, "stratum": stratum, "metric": metric,
                "mean": mean, "ci95_low": low, "ci95_high": high, "n_seeds": n}  # fmt: skip

    nan = float("nan")
    summary = pd.DataFrame(
        [
            row("auroc", "inside_bg_on", 0.997, 0.996, 0.998),  # met (bound 0.994)
            row("fpr", "inside_bg_on", 0.015, 0.005, 0.025),  # mean met, CI crosses 0.02
            row("leakage", "active_disks", 0.06, 0.05, 0.07),  # missed by 0.03
            row("leakage_ratio", "active_disks", nan, nan, nan, 0),
            row("leakage", "disk0", 0.01, 0.0, 0.02),
            row("leakage", "disk1", 0.045, 0.04, 0.07),  # the worst disk: CI crosses 0.05
            row("auroc", "outside", 1.0, nan, nan, 1),  # one run
            row("auroc", "inside_bg_off", 0.9, nan, nan, 1),
            row("pass_auroc_inside_bg_on", "targets", 0.8, 0.28, 0.99),
            *(row(metric, stratum, mean, mean, mean, model="bayes") for metric, stratum, mean in
              (("auroc", "inside_bg_on", 0.999), ("fpr", "inside_bg_on", 0.01),
               ("auroc", "outside", 1.0), ("auroc", "inside_bg_off", 1.0))),
        ]
    )  # fmt: skip
    table = targets(summary, "m").set_index("target")
    verdicts = table["verdict"]
    assert verdicts["auroc `inside_bg_on` >= bayes -0.005"] == "met"
    assert table.loc["auroc `inside_bg_on` >= bayes -0.005", "bound"] == "0.994"
    assert verdicts["fpr `inside_bg_on` <= bayes +0.01"] == "mean met, CI crosses"
    assert verdicts["leakage `active_disks` <= 0.03"] == "missed by 0.030"
    assert verdicts["leakage_ratio `active_disks` <= 0.03"] == "no data"
    assert verdicts["leakage `each_disk` <= 0.05"] == "mean met, CI crosses"
    assert table.loc["leakage `each_disk` <= 0.05", "mean [95 % CI]"].startswith("0.045")
    assert verdicts["auroc `outside` >= bayes -0.005"] == "one run, met"
    assert verdicts["auroc `inside_bg_off` >= bayes -0.005"] == "one run, missed by 0.095"
    assert "mean met, CI crosses" not in set(
        verdicts.drop(["fpr `inside_bg_on` <= bayes +0.01", "leakage `each_disk` <= 0.05"])
    )
    assert table.loc["auroc `inside_bg_on` >= bayes -0.005", "runs passing"] == (
        "4 of 5 [0.28, 0.99]"
    )
    assert table.loc["auroc `outside` >= bayes -0.005", "mean [95 % CI]"] == "1.000"
    # without the ceiling a relative target has no bound to be judged against
    alone = targets(summary[summary["model"] == "m"], "m").set_index("target")["verdict"]
    assert alone["auroc `inside_bg_on` >= bayes -0.005"] == "no data"
    assert alone["leakage `active_disks` <= 0.03"] == "missed by 0.030"


def test_pass_count_table_says_k_of_n_and_the_unjudged_runs():
    from fgbg_tools.results_pages import pass_count_table

    def row(scenario, model, metric, k, n, low, high):
        return {"scenario": scenario, "model": model, "stratum": "targets", "metric": metric,
                "mean": k / n, "ci95_low": low, "ci95_high": high, "n_seeds": n}  # fmt: skip

    summary = pd.DataFrame(
        [
            row("x90", "layered", "runs_passing", 4, 5, 0.284, 0.995),
            row("x90", "layered", "runs_not_judged", 0, 5, 0.0, 0.522),
            row("control", "layered", "runs_passing", 0, 5, 0.0, 0.522),
            row("control", "layered", "runs_not_judged", 5, 5, 0.478, 1.0),
            row("x90", "raw", "runs_passing", 0, 5, 0.0, 0.522),
            row("x90", "raw", "runs_not_judged", 0, 5, 0.0, 0.522),
        ]
    )
    table = pass_count_table(summary).set_index("model")
    assert list(table.columns) == ["x90", "control"]
    assert table.loc["layered", "x90"] == "4 of 5 [0.28, 0.99]"
    assert table.loc["layered", "control"] == "0 of 5 [0.00, 0.52], 5 not judged"
    assert table.loc["raw", "x90"] == "0 of 5 [0.00, 0.52]"
    assert table.loc["raw", "control"] == ""


def test_schedule_comparison_says_inside_better_or_worse():
    from fgbg_tools.results_pages import schedule_comparison

    baseline = pd.DataFrame(
        [
            ("layered", "inside_bg_on", "auroc", "x90", 0.990, 0.002),
            ("layered", "inside_bg_on", "fpr", "x90", 0.100, 0.010),
            ("layered", "active_disks", "leakage", "x90", 0.030, 0.005),
            ("layered", "inside_bg_off", "auroc", "x90", 0.900, 0.010),  # not checked
        ],
        columns=["model", "stratum", "metric", "scenario", "mean", "half_width"],
    )
    summary = pd.DataFrame(
        [
            ("x90", "layered", "inside_bg_on", "auroc", 0.991, 0.990, 0.992),  # inside
            ("x90", "layered", "inside_bg_on", "fpr", 0.200, 0.150, 0.250),  # worse
            ("x90", "layered", "active_disks", "leakage", 0.010, 0.005, 0.015),  # better
            ("x90", "layered", "inside_bg_off", "auroc", 0.5, 0.4, 0.6),
        ],
        columns=["scenario", "model", "stratum", "metric", "mean", "ci95_low", "ci95_high"],
    )
    table = schedule_comparison(summary, baseline)
    assert table["verdict"].tolist() == ["inside", "worse", "better"]
    assert table["this run"].iloc[1] == "0.200 ± 0.050"


def test_training_summary_counts_each_models_verdicts():
    from fgbg_tools.results_pages import training_summary

    epochs = pd.DataFrame(
        {
            "model": ["dual", "layered"],
            "epochs_min": [60, 17],
            "epochs_median": [60.0, 22.0],
            "epochs_max": [60, 25],
            "best_val_loss_mean": [449.1, 284.0],
        }
    )
    schedule = pd.DataFrame(
        {"model": ["dual", "dual", "layered", "layered"], "verdict": ["inside"] * 3 + ["worse"]}
    )
    table = training_summary(epochs, schedule).set_index("model")
    assert table.loc["dual", "headline rows against 60 epochs"] == "2 inside"
    assert table.loc["layered", "headline rows against 60 epochs"] == "1 inside, 1 worse"
    assert table.loc["layered", "epochs"] == "22 (17-25)"
