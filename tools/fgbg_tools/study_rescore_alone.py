"""Rescore a default run's layered models on validation images with the readout's place
evidence taken with every other place's gate closed ("alone"), EM rates refitted the same
way; beside the models as they are and the bayes ceiling on the same images. Prints
verdicts (relative targets)."""
import sys
from pathlib import Path
import pandas as pd, torch
from fgbg.evaluate import evaluate, model_outputs
from fgbg.references import reference_outputs
from fgbg.store import open_split
from fgbg.training import load_trained
from fgbg.models.layered import inference
from fgbg_tools.results_pages import long_values
torch.set_num_threads(1)
res = Path(sys.argv[1]); scenarios = sys.argv[2].split(","); out = Path(sys.argv[3])
original = inference.place_evidence
def alone(model, x, means):
    fg = model.foreground
    gate_logits = fg.gate_logits
    fg.gate_logits = lambda z: torch.full_like(gate_logits(z), -1e4)
    try:
        return original(model, x, means)
    finally:
        del fg.gate_logits
rows = []
for scen in scenarios:
    for mp in sorted(res.glob(f"models/{scen}/layered/seed*/model.pt")):
        seed = int(mp.parts[-2][4:])
        data = res / f"data/{scen}/seed{seed}"
        val = open_split(data / "val.zarr").load()
        train = torch.as_tensor(open_split(data / "train.zarr")["images"].values).unsqueeze(1)
        outs = {"bayes": reference_outputs({"type": "bayes"}, val)}
        model, _ = load_trained(mp)
        outs["layered"] = model_outputs(model, val["images"].values)
        inference.place_evidence = alone
        try:
            model, _ = load_trained(mp)
            model.fit_readout(train)
            outs["layered_alone"] = model_outputs(model, val["images"].values)
        finally:
            inference.place_evidence = original
        for name, o in outs.items():
            t = evaluate(o, val, 0.5)
            for k in ("rates", "separation"):
                t[k].insert(0, "seed", seed); t[k].insert(0, "model", name); t[k].insert(0, "scenario", scen)
            rows.append(long_values(t["rates"], t["separation"]))
        print("scored", mp, flush=True)
pd.concat(rows).to_csv(out, index=False)
