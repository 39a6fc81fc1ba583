import sys
import pandas as pd
from fgbg.targets import run_verdicts, ALL, FAIL, PASS
long = pd.concat([pd.read_csv(f) for f in sys.argv[1:]], ignore_index=True)
v = run_verdicts(long)
for (scen, model), g in v.groupby(["scenario", "model"]):
    runs = g[g.target == ALL]
    fails = g[(g.verdict == FAIL) & (g.target != ALL)]
    print(f"{scen:8s} {model:14s} {int((runs.verdict == PASS).sum())}/{len(runs)}  " + "; ".join(
        f"s{r.seed} {r.metric} {r.stratum} {r.value:.3f} (bound {r.bound:.3f})" for r in fails.itertuples()))
sel = long[long.model.str.startswith("layered") & (((long.stratum == "inside_bg_on") & long.metric.isin(["auroc", "tpr", "fpr"])) | ((long.stratum == "active_disks") & (long.metric == "leakage")))]
print(sel.pivot_table(index=["scenario", "seed"], columns=["model", "metric"], values="value").round(4).to_string())
