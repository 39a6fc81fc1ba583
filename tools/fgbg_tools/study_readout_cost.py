"""Study readout-05 (docs/studies/readout-05-fit-cost.md; removed after it): the binary
readout's fit as adopted at `c8799a8` (one pass of the presences per EM round gives both
the rates and the templates) with ROUNDS rounds, read on trained layered models' first 500
validation images, with the weights of the networks fixed.

The models are files written before the template refit (formats 2-3, their templates as
trained): `fit_readout` starts from the trained templates, as the training job does.
Writes rates.csv and separation.csv for `layered` and `bayes` under
OUT/eval/<scenario>/<method>/seed<k>/ (read by fgbg_tools.results_pages.per_run and
fgbg.targets.run_verdicts) and prints each run's fit in CPU seconds.

    python tools/fgbg_tools/study_readout_cost.py RESULTS OUT --rounds 10 [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import fgbg.models.layered.inference as inference
import fgbg.training
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
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    inference.TEMPLATE_ROUNDS = args.rounds
    # files of the runs read (ec78178, 33c422d, 95f4390) hold the templates as trained
    fgbg.training.STILL_READ = {n: ("dual", "vae", "layered") for n in (2, 3)}
    seeds = {f"seed{s}" for s in args.seeds.split(",")}
    for model_file in sorted(args.results.glob("models/*/layered/seed*/model.pt")):
        scenario, seed = model_file.parts[-4], model_file.parts[-2]
        if seed not in seeds:
            continue
        data = args.results / "data" / scenario / seed
        train, val = open_split(data / "train.zarr"), open_split(data / "val.zarr")
        held = val.isel(sample=slice(0, N_VAL)).load()
        model, method = load_trained(model_file)
        images = torch.from_numpy(train["images"].values[: inference.RATE_FIT_IMAGES])
        start = time.process_time()
        inference.fit_readout(model, images.unsqueeze(1))
        fit = time.process_time() - start
        outputs = {
            "layered": model_outputs(model, held["images"].values, method["likelihood"], 250),
            "bayes": reference_outputs({"type": "bayes"}, held, train=train, val=val),
        }
        novel = ~seen_in(train["images"].values, held["images"].values)
        for name, out in outputs.items():
            tables = evaluate(out, held, 0.5, novel=novel, seed=0)
            run = args.out / "eval" / scenario / name / seed
            for table in ("rates", "separation"):
                write_csv(tables[table], run / f"{table}.csv")
        print(scenario, seed, f"fit {fit:.1f} CPU s", flush=True)


if __name__ == "__main__":
    main()
