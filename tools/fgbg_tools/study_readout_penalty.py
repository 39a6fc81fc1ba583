"""Study readout-03 (docs/studies/readout-03-penalty-out.md; removed after it): trained
layered models read on their validation images with the pixel penalty in the readout's
evidence scaled by FACTOR, the place rates refitted under it (FACTOR 1: the model file's
own rates, the readout as it is). Writes rates.csv and separation.csv for `layered` and
`bayes` under OUT/eval/<scenario>/<method>/seed<k>/, which fgbg_tools.results_pages.per_run
and fgbg.targets.run_verdicts read.

    python tools/fgbg_tools/study_readout_penalty.py RESULTS OUT FACTOR [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import fgbg.models.layered.inference as inference
from fgbg.evaluate import evaluate, model_outputs
from fgbg.novelty import seen_in
from fgbg.references import reference_outputs
from fgbg.store import open_split
from fgbg.tables import write_csv
from fgbg.training import load_trained

N_VAL = 500  # the first 500 validation images of each run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("factor", type=float)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    original = inference.place_evidence

    def scaled(model, x, means):  # place_evidence with the penalty x factor
        saved = model.config["fg_pixel_penalty"]
        model.config["fg_pixel_penalty"] = saved * args.factor
        try:
            return original(model, x, means)
        finally:
            model.config["fg_pixel_penalty"] = saved

    inference.place_evidence = scaled
    seeds = {f"seed{s}" for s in args.seeds.split(",")}
    for model_file in sorted(args.results.glob("models/*/layered/seed*/model.pt")):
        scenario, seed = model_file.parts[-4], model_file.parts[-2]
        if seed not in seeds:
            continue
        data = args.results / "data" / scenario / seed
        train, val = open_split(data / "train.zarr"), open_split(data / "val.zarr")
        held = val.isel(sample=slice(0, N_VAL)).load()
        model, method = load_trained(model_file)
        if args.factor != 1.0:
            images = train["images"].values[: inference.RATE_FIT_IMAGES]
            model.fit_readout(torch.from_numpy(images).unsqueeze(1).float())
        outputs = {
            "layered": model_outputs(model, held["images"].values, method["likelihood"], 250),
            "bayes": reference_outputs({"type": "bayes"}, held, train=train, val=val),
        }
        novel = ~seen_in(train["images"].values, held["images"].values)
        for name, out in outputs.items():
            tables = evaluate(out, held, 0.5, novel=novel, seed=0)
            run_dir = args.out / "eval" / scenario / name / seed
            for table in ("rates", "separation"):
                write_csv(tables[table], run_dir / f"{table}.csv")
        print(scenario, seed, flush=True)


if __name__ == "__main__":
    main()
