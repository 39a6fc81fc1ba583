"""fgbg_tools.study: a validation study's per-run verdicts and training diagnostics."""

import json

import pandas as pd

from fgbg_tools.study import (
    count_table,
    history_table,
    kept_starts,
    replay_rules,
    run_table,
)

GOOD = {"auroc": 0.999, "tpr": 0.99, "fpr": 0.0}
CEILING = {"auroc": 0.9995, "tpr": 0.999, "fpr": 0.005}  # bayes: the relative targets' base


def write_ceiling(results, seeds=range(3)):
    for seed in seeds:
        write_run(results, "bayes", seed, CEILING, 0.0005, history=False)


def write_run(results, model, seed, rates, leakage, history=True, best_loss=1.0):
    run = results / f"eval/x90/{model}/seed{seed}"
    run.mkdir(parents=True)
    strata = ["inside_bg_on", "outside", "inside_bg_off"]
    pd.DataFrame([{"stratum": s, **rates} for s in strata]).to_csv(run / "rates.csv")
    pd.DataFrame(
        [
            ("active_disks", "leakage", leakage, 10),
            ("active_disks", "leakage_ratio", leakage, 10),
            ("disk0", "leakage", leakage, 10),
        ],
        columns=["region", "metric", "value", "pixels"],
    ).to_csv(run / "separation.csv", index=False)
    (run / "eval.json").write_text("{}")
    if history:
        out = results / f"models/x90/{model}/seed{seed}"
        out.mkdir(parents=True)
        pd.DataFrame(
            {"epoch": [1, 2, 3], "val_loss": [3.0, best_loss, 2.0], "val_kl_bg": [0.1, 0.0, 0.2]}
        ).to_csv(out / "history.csv", index=False)
        (out / "run.json").write_text(json.dumps({"best_epoch": 2}))


def test_runs_pass_only_when_every_target_is_met(tmp_path):
    write_run(tmp_path, "m", 0, GOOD, 0.01)
    write_run(tmp_path, "m", 1, GOOD, 0.05)  # leakage above 0.03: fails
    write_run(tmp_path, "m", 2, {**GOOD, "auroc": 0.99}, 0.01)  # 0.0095 below bayes: fails
    write_ceiling(tmp_path)
    table = run_table(tmp_path, models=["m"])
    assert table["model"].tolist() == ["bayes"] * 3 + ["m"] * 3  # the ceiling beside
    table = table[table["model"] == "m"]
    assert table["passes"].tolist() == [True, False, False]
    assert table["epochs"].tolist() == [3, 3, 3] and table["val_loss"].tolist() == [1.0] * 3
    assert table["kl_bg"].tolist() == [0.0] * 3  # at the best validation epoch
    counts = count_table(tmp_path, models=["m"]).set_index("model")["runs passing"]
    assert counts.to_dict() == {"bayes": "3 of 3 [0.29, 1.00]", "m": "1 of 3 [0.01, 0.91]"}


def test_best_of_starts_follows_the_validation_loss_not_the_verdict(tmp_path):
    bad = 0.05  # leakage above 0.03: fails
    for seed, (loss_0, leak_0), (loss_1, leak_1) in [
        (0, (1.0, 0.01), (1.5, bad)),  # the passing start has the lower loss: kept
        (1, (1.5, bad), (1.2, 0.01)),  # the passing start is the second: kept
        (2, (1.0, 0.01), (0.5, bad)),  # the failing start has the lower loss: kept, fails
    ]:
        write_run(tmp_path, "m", seed, GOOD, leak_0, best_loss=loss_0)
        write_run(tmp_path, "m_r1", seed, GOOD, leak_1, best_loss=loss_1)
    write_ceiling(tmp_path)
    assert kept_starts(tmp_path, ["m", "m_r1"])["model"].tolist() == ["m", "m_r1", "m_r1"]
    table = run_table(tmp_path, starts=["m", "m_r1"])
    kept = table[table["model"] == "m_best_of_2"]
    assert kept["passes"].tolist() == [True, True, False]
    assert kept["val_loss"].tolist() == [1.0, 1.2, 0.5]
    counts = count_table(tmp_path, starts=["m", "m_r1"]).set_index("model")["runs passing"]
    assert counts["m_best_of_2"].startswith("2 of 3") and counts["m"].startswith("2 of 3")


def test_histories_list_runs_without_an_evaluation(tmp_path):
    write_run(tmp_path, "m", 0, GOOD, 0.01)
    out = tmp_path / "models/x90/other/seed4"
    out.mkdir(parents=True)
    pd.DataFrame({"epoch": [1], "val_loss": [5.0]}).to_csv(out / "history.csv", index=False)
    (out / "run.json").write_text("{}")
    table = history_table(tmp_path)
    assert list(zip(table["model"], table["seed"], strict=True)) == [("m", 0), ("other", 4)]


def write_fixed_schedule_run(results, model, seed, losses, patience=0):
    out = results / f"models/x90/{model}/seed{seed}"
    out.mkdir(parents=True)
    epochs = list(range(1, len(losses) + 1))
    pd.DataFrame({"epoch": epochs, "val_loss": losses}).to_csv(out / "history.csv", index=False)
    training = {"epochs": len(losses), "patience": patience, "min_improvement": 0.01}
    (out / "run.json").write_text(json.dumps({"training": {**training, "lr_decay_epochs": 3}}))


def test_replayed_rules_stop_in_a_plateau_and_show_the_gap(tmp_path):
    """A curve with a plateau (epochs 3-7) before a second drop: a short patience stops in
    the plateau, 10 % above the fixed schedule's best; a long one reaches the drop."""
    losses = [200.0, 120.0, 110.0, 110.0, 110.0, 110.0, 110.0, 100.0, 100.0, 100.0]
    write_fixed_schedule_run(tmp_path, "m", 0, losses)
    write_fixed_schedule_run(tmp_path, "ruled", 0, losses, patience=3)  # not a fixed run
    table = replay_rules(tmp_path, [(3, 0.01), (6, 0.01)]).set_index("rule")
    assert table["runs"].tolist() == [1, 1]  # the run trained under a rule is left out
    short, long = table.loc["patience 3, 0.01"], table.loc["patience 6, 0.01"]
    assert short["epochs_max"] == 9 and short["gap_pct_max"] == 10.0  # decay in epochs 7-9
    assert long["epochs_max"] == 10 and long["gap_pct_max"] == 0.0
