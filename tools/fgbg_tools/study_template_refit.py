"""Study readout-04 (docs/studies/readout-04-template-refit.md; removed after it): trained
binary layered models read on their validation images with a readout that refits what the
training's pixel penalty biased, with the weights of the networks fixed:

- the evidence and the place rates without the pixel penalty (readout-03's "penalty out");
- every place's template refitted by EM on the rate-fit training images (noisy-OR
  responsibilities at the readout's presences, one pseudo-image at the old template),
  ROUNDS rounds alternating with the rates;
- after half of them, every used place (rate >= 0.01) whose shape (t > 0.5 on the image's
  own pixels) lies within a used neighbour's shape of at least its size (90 % of its
  pixels) dropped: two independent places cannot say that they co-occur, one place can.

`--keep-unused`: the variant that refits only the places used (rate >= 0.01) at the first
fit; the others keep their trained templates.

Writes rates.csv and separation.csv for `layered` and `bayes` under
OUT/eval/<scenario>/<method>/seed<k>/ (read by fgbg_tools.results_pages.per_run and
fgbg.targets.run_verdicts), and each run's refitted templates and rates.

    python tools/fgbg_tools/study_template_refit.py RESULTS OUT [--seeds 0,1,2] [--no-prune]
        [--keep-unused]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

import fgbg.models.layered.inference as inference
import fgbg.training
from fgbg.evaluate import evaluate, model_outputs
from fgbg.models.layered.foreground import TEMPLATE_SCALE, template_window
from fgbg.novelty import seen_in
from fgbg.references import reference_outputs
from fgbg.store import open_split
from fgbg.tables import write_csv
from fgbg.training import load_trained

N_VAL = 500  # the first 500 validation images of each run
ROUNDS = 20  # rates, then templates, per round
PSEUDO = 1.0  # pseudo-images at the old template in each template update
USED = 0.01  # a place is used when its rate is at least this
CONTAINED = 0.9  # share of a place's shape inside a neighbour's that drops it
T_MIN = 1e-4  # templates are kept within [T_MIN, 1 - T_MIN]


def windows(model, t):
    k = model.foreground.kernel
    return F.unfold(t, template_window(k), padding=k // 2, stride=k)


def refit_templates(model, batches, rate, used):
    """One EM update of the templates of the places `used` (all: None) at the readout's
    presences under `rate`."""
    fg = model.foreground
    t = torch.sigmoid(TEMPLATE_SCALE * fg.templates)[0]  # (window^2, places)
    fired, present = torch.zeros_like(t), torch.zeros_like(t)
    for x, means in batches:
        log_p, _ = inference.presences(model, x, means, rate)
        inside = windows(model, model.padding.pad(torch.ones_like(x)))
        b = torch.sigmoid(windows(model, model.background.logits(means["z_bg"])))
        log_not_st, log_not_f = fg.fold(log_p)
        quiet_others = (windows(model, log_not_f) - log_not_st).exp() * (1 - b)
        st = log_p.exp() * t
        on = windows(model, model.padding.pad(x))
        fired += (inside * on * st / (1 - (1 - st) * quiet_others).clamp_min(1e-12)).sum(0)
        present += (inside * log_p.exp()).sum(0)
    new = ((fired + PSEUDO * t) / (present + PSEUDO)).clamp(T_MIN, 1 - T_MIN)
    new = new if used is None else torch.where(used, new, t)
    fg.templates.data.copy_((torch.logit(new) / TEMPLATE_SCALE).unsqueeze(0))


def drop_contained(model, used) -> list[int]:
    """Drop (template to T_MIN) each used place whose shape lies within a used neighbour's."""
    fg = model.foreground
    t = torch.sigmoid(TEMPLATE_SCALE * fg.templates)[0]
    k, places = fg.kernel, t.shape[1]
    own = model.padding.pad(torch.ones(1, 1, model.height, model.width))[0, 0] > 0
    shapes = []
    for p in range(places):
        column = torch.zeros(1, *t.shape)
        column[0, :, p] = t[:, p]
        image = F.fold(column, fg.size, template_window(k), padding=k // 2, stride=k)[0, 0]
        shapes.append((image > 0.5) & own & bool(used[p]))
    sizes = [int(s.sum()) for s in shapes]
    dropped = []
    for p in range(places):
        for q in range(places):
            if sizes[p] == 0 or q == p or q in dropped or sizes[q] < sizes[p]:
                continue
            if int((shapes[p] & shapes[q]).sum()) >= CONTAINED * sizes[p] and (
                sizes[q] > sizes[p] or q < p
            ):
                dropped.append(p)
                break
    for p in dropped:
        fg.templates.data[0, :, p] = torch.logit(torch.tensor(T_MIN)) / TEMPLATE_SCALE
    return dropped


def fit_readout(model, images, prune: bool, keep_unused: bool) -> list[int]:
    model.eval()
    batches = []
    for x in images[: inference.RATE_FIT_IMAGES].float().split(50):
        posteriors = inference.refine(model, x, model.encode(x))
        batches.append((x, {n: m for n, (m, _) in posteriors.items()}))
    dropped = []
    with torch.no_grad():

        def rates(rate=None):
            if rate is None:
                return inference.em_rates(
                    torch.cat(
                        [
                            inference.place_evidence(model, x, m)(inference.gate_presence(model, m))
                            for x, m in batches
                        ]
                    )
                )
            return inference.em_rates(
                torch.cat([inference.presences(model, x, m, rate)[1] for x, m in batches])
            )

        rate = rates()
        used = rate >= USED if keep_unused else None
        for r in range(ROUNDS):
            rate = rates(rate)
            refit_templates(model, batches, rate, used)
            if prune and r == ROUNDS // 2:
                dropped = drop_contained(model, rate >= USED)
        rate = rates(rate)
    model.foreground.place_rate.copy_(rate)
    return dropped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--no-prune", action="store_true")
    parser.add_argument("--keep-unused", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # the suite's runs of ec78178 wrote their files before the format number moved to 3
    fgbg.training.STILL_READ = {2: ("dual", "vae", "layered")}
    original = inference.place_evidence

    def without_penalty(model, x, means):  # refinement keeps the training's objective
        saved = model.config["fg_pixel_penalty"]
        model.config["fg_pixel_penalty"] = 0.0
        try:
            return original(model, x, means)
        finally:
            model.config["fg_pixel_penalty"] = saved

    inference.place_evidence = without_penalty
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
        x = images.unsqueeze(1).float()
        dropped = fit_readout(model, x, not args.no_prune, args.keep_unused)
        run = args.out / "eval" / scenario / "layered" / seed
        run.mkdir(parents=True, exist_ok=True)
        fg = model.foreground
        torch.save({"templates": fg.templates.data, "rate": fg.place_rate}, run / "readout.pt")
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
        print(scenario, seed, "dropped places", dropped, flush=True)


if __name__ == "__main__":
    main()
