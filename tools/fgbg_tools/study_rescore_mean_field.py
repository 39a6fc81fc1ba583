"""Study readout-02: rescore trained layered models on validation images with each place's
evidence weighed against the other places as the readout itself scores them (sequential
mean-field: places updated in four colour classes by grid parity, from the gates, SWEEPS
sweeps), rates refitted by EM at that fixed point; beside the readout as it is and bayes.
Usage: RESULTS_DIR SCENARIO_GLOB OUT_CSV [SWEEPS]."""
import sys
from pathlib import Path
import pandas as pd, torch
import torch.nn.functional as F
from fgbg.evaluate import evaluate, model_outputs
from fgbg.references import reference_outputs
from fgbg.store import open_split
from fgbg.training import load_trained
from fgbg.models.layered import inference
from fgbg_tools.results_pages import long_values
torch.set_num_threads(2)
SWEEPS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
OUTER = 5
original_evidence = inference.place_evidence

def evidence_given(model, x, means, log_s):
    """place_evidence with the other places at log presence log_s (N, 1, places)."""
    fg = model.foreground
    gl = fg.gate_logits
    fg.gate_logits = lambda z: torch.logit(log_s.exp().clamp(1e-7, 1 - 1e-7)).view(len(x), 1, *fg.grid)
    try:
        return original_evidence(model, x, means)
    finally:
        del fg.gate_logits

def colours(grid):
    i = torch.arange(grid[0]).view(-1, 1).expand(grid); j = torch.arange(grid[1]).view(1, -1).expand(grid)
    c = (2 * (i % 2) + (j % 2)).flatten()
    return [c == k for k in range(4)]

def mean_field(model, x, means, rate):
    fg = model.foreground
    log_s = F.logsigmoid(fg.gate_logits(means["z_fg"])).flatten(2)
    logit_r = torch.logit(rate.clamp(inference.RATE_FLOOR, 1 - inference.RATE_FLOOR))
    masks = colours(fg.grid)
    for _ in range(SWEEPS):
        for m in masks:
            e = evidence_given(model, x, means, log_s)
            new = F.logsigmoid(logit_r + e).unsqueeze(1)
            log_s = torch.where(m, new, log_s)
    return evidence_given(model, x, means, log_s), log_s

def mf_presence_foreground(model, x, means):
    _, log_s = mean_field(model, x, means, model.foreground.place_rate)
    return -torch.expm1(model.foreground.fold(log_s)[1])

def mf_fit_rates(model, images):
    inference.fit_place_rates(model, images)  # start: the rates as now
    model.eval()
    batches = []
    for x in images[:inference.RATE_FIT_IMAGES].float().split(50):
        post = inference.refine(model, x, model.encode(x))
        batches.append((x, {n: m for n, (m, _) in post.items()}))
    with torch.no_grad():
        for _ in range(OUTER):
            rate = model.foreground.place_rate.clone()
            ev = torch.cat([mean_field(model, x, means, rate)[0] for x, means in batches])
            model.foreground.place_rate.copy_(inference.em_rates(ev))

res = Path(sys.argv[1]); out = Path(sys.argv[3])
rows = []
for mp in sorted(res.glob(f"models/{sys.argv[2]}/layered/seed*/model.pt")):
    scen = mp.parts[-4]
    seed = int(mp.parts[-2][4:])
    data = res / f"data/{scen}/seed{seed}"
    val = open_split(data / "val.zarr").load()
    train = torch.as_tensor(open_split(data / "train.zarr")["images"].values).unsqueeze(1)
    outs = {"bayes": reference_outputs({"type": "bayes"}, val)}
    model, _ = load_trained(mp)
    outs["layered"] = model_outputs(model, val["images"].values)
    orig_pf = inference.presence_foreground
    import fgbg.models.layered as L
    L.presence_foreground = mf_presence_foreground
    try:
        model, _ = load_trained(mp)
        with torch.no_grad():
            mf_fit_rates(model, train)
        outs["layered_mf"] = model_outputs(model, val["images"].values)
    finally:
        L.presence_foreground = orig_pf
    for name, o in outs.items():
        t = evaluate(o, val, 0.5)
        for k in ("rates", "separation"):
            t[k].insert(0, "seed", seed); t[k].insert(0, "model", name); t[k].insert(0, "scenario", scen)
        rows.append(long_values(t["rates"], t["separation"]))
    print("scored", mp, flush=True)
pd.concat(rows).to_csv(out, index=False)
