"""Extract the fixed 60-epoch schedule's headline table (the default run of commit 1b523c5,
45 min 43 s on 2 cores, test split, 5 seeds) from that commit's generated README into a tidy
CSV, the baseline the early-stopped default run is compared with (fgbg_tools.results_pages).

    python benchmarks/baseline/extract_60_epochs.py > benchmarks/baseline/summary_60_epochs.csv
"""

import re
import subprocess
import sys

COMMIT = "1b523c5"
SCENARIOS = ("x90", "x50", "x90_20")
readme = subprocess.run(
    ["git", "show", f"{COMMIT}:README.md"], capture_output=True, text=True, check=True
).stdout
row = re.compile(r"^\| (\w+) \| (\w+) \| (\w+) \| " + r" \| ".join([r"([\d.]+) ± ([\d.]+)"] * 3))
out = sys.stdout
out.write("model,stratum,metric,scenario,mean,half_width\n")
for line in readme.splitlines():
    match = row.match(line)
    if match:
        model, stratum, metric, *values = match.groups()
        for s, scenario in enumerate(SCENARIOS):
            mean, half = values[2 * s], values[2 * s + 1]
            out.write(f"{model},{stratum},{metric},{scenario},{mean},{half}\n")
