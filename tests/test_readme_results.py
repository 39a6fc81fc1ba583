"""The README's Results tables come from the summary files, unaltered."""

import pandas as pd
from fgbg.readme_results import main


def test_tables_hold_the_headline_rows_and_every_finding(tmp_path):
    pd.DataFrame(
        {
            "model": ["dual", "dual", "dual"],
            "stratum": ["outside", "outside", "all"],
            "metric": ["tpr", "balanced_accuracy", "tpr"],
            "x90": ["0.9 ± 0.1", "0.8 ± 0.1", "0.7 ± 0.1"],
        }
    ).to_csv(tmp_path / "summary_wide.csv", index=False)
    pd.DataFrame(
        {
            "finding": [1, 2],
            "claim": ["a", "b"],
            "rule": ["r", "r"],
            "numbers": ["x = 1 [0, 2] (n=5)", "y|z"],
            "verdict": ["supported", "inconclusive"],
        }
    ).to_csv(tmp_path / "findings.csv", index=False)
    headline, findings = main(tmp_path).split("\n\n")
    assert headline.splitlines()[2] == "| dual | outside | tpr | 0.9 ± 0.1 |"
    assert len(headline.splitlines()) == 3  # header, rule, the one headline row
    assert findings.splitlines()[2] == "| 1 | a | supported | x = 1 [0, 2] (n=5) |"
    assert findings.splitlines()[3] == "| 2 | b | inconclusive | y\\|z |"
