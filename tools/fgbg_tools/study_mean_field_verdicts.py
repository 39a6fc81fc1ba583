"""Study readout-02: runs meeting every target per scenario and model, and the per-run change
(mean-field readout minus the readout as it is) of the inside_bg_on AUROC, TPR, FPR and the
pooled leakage, from the CSVs that study_rescore_mean_field.py writes."""
import sys

import pandas as pd
from fgbg.targets import ALL, PASS, run_verdicts

long = pd.concat([pd.read_csv(f) for f in sys.argv[1:]], ignore_index=True)
v = run_verdicts(long)
runs = v[v.target == ALL]
print(runs.pivot_table(index="scenario", columns="model", values="verdict",
                       aggfunc=lambda s: f"{(s == PASS).sum()} of {len(s)}").to_string())
sel = long[long.model.isin(["layered", "layered_mf"]) & (
    ((long.stratum == "inside_bg_on") & long.metric.isin(["auroc", "tpr", "fpr"]))
    | ((long.stratum == "active_disks") & (long.metric == "leakage")))]
p = sel.pivot_table(index=["scenario", "seed"], columns=["metric", "model"], values="value")
print(pd.DataFrame({m: p[(m, "layered_mf")] - p[(m, "layered")]
                    for m in ["auroc", "tpr", "fpr", "leakage"]}).round(4).to_string())
