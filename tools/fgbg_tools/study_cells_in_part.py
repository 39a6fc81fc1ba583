"""Study readout-03, afterwards (docs/studies/readout-03-penalty-out.md; removed after it).

`parts RESULTS...`: per trained layered model and cell, over the cell's active instances on
the first 300 validation images, (a) with every disk off and (b) with a disk that covers
part of the cell on, the median share of the cell's pixels where the scored foreground f is
below 0.5; a share above 0 and below a half is a cell drawn in part.

`calls RESULTS SCENARIO SEED`: per cell that a disk covers, the share of its instances under
an active disk scored above 0.5, inactive (FPR) and active (TPR), for `bayes` and the
layered model with the pixel penalty in the readout's evidence and out of it (place rates
refitted), on the first 500 validation images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

import fgbg.models.layered.inference as inference
import fgbg.training
from fgbg.evaluate import cell_scores
from fgbg.references import reference_outputs
from fgbg.store import open_split

fgbg.training.STILL_READ = {2: ("dual", "vae", "layered")}  # ec78178's B-spline files


def foreground(model, images: np.ndarray) -> np.ndarray:
    x = torch.as_tensor(images).unsqueeze(1).float()
    with torch.no_grad():
        return torch.cat([model.foreground_layer(b)[:, 0] for b in x.split(100)]).numpy()


def covering_disk_on(split) -> np.ndarray:
    """(N, cells): whether a disk that covers part of the cell is active."""
    cells = split.cell_mask.values.astype(bool)
    disks = split.disk_mask.values.astype(bool)
    active = split.disk_active.values.astype(bool)
    return np.stack([active[:, disks[:, cell].any(1)].any(1) for cell in cells], 1)


def parts(results: list[Path]) -> None:
    for run in results:
        for model_file in sorted(run.glob("models/*/layered/seed*/model.pt")):
            scenario, seed = model_file.parts[-4], model_file.parts[-2]
            val = open_split(run / "data" / scenario / seed / "val.zarr")
            val = val.isel(sample=slice(0, 300)).load()
            model, _ = fgbg.training.load_trained(model_file)
            model.eval()
            f = foreground(model, val.images.values)
            cells = val.cell_mask.values.astype(bool)
            active = val.cell_active.values.astype(bool)
            no_disk = ~val.disk_active.values.astype(bool).any(1)
            disk_on = covering_disk_on(val)
            found = []
            for c, cell in enumerate(cells):
                for name, on in (("disks off", no_disk), ("its disk on", disk_on[:, c])):
                    on = on & active[:, c]
                    if on.sum() < 5:
                        continue
                    share = np.median((f[on][:, cell] < 0.5).mean(1))
                    if 0 < share < 0.5:
                        rows, cols = np.where(cell)
                        found.append(
                            f"cell {c} rows {rows.min()}-{rows.max()} cols {cols.min()}-"
                            f"{cols.max()}, {name}: pixels under 0.5 {share:.2f}"
                        )
            print(f"{run} {scenario} {seed}: {len(found)}", *found, sep="\n    ", flush=True)


def calls(run: Path, scenario: str, seed: str) -> None:
    data = run / "data" / scenario / seed
    train = open_split(data / "train.zarr")
    val = open_split(data / "val.zarr").isel(sample=slice(0, 500)).load()
    cells = val.cell_mask.values.astype(bool)
    scores = {"bayes": cell_scores(reference_outputs({"type": "bayes"}, val)["foreground"], cells)}
    model, _ = fgbg.training.load_trained(run / "models" / scenario / "layered" / seed / "model.pt")
    model.eval()
    scores["penalty in"] = cell_scores(foreground(model, val.images.values), cells)
    original = inference.place_evidence

    def without_penalty(m, x, means):
        saved, m.config["fg_pixel_penalty"] = m.config["fg_pixel_penalty"], 0.0
        try:
            return original(m, x, means)
        finally:
            m.config["fg_pixel_penalty"] = saved

    inference.place_evidence = without_penalty
    x = torch.as_tensor(train.images.values[: inference.RATE_FIT_IMAGES]).unsqueeze(1).float()
    model.fit_readout(x)
    scores["penalty out"] = cell_scores(foreground(model, val.images.values), cells)
    active = val.cell_active.values.astype(bool)
    disk_on = covering_disk_on(val)
    print("cell rows cols | FPR under an active disk (n) | TPR (n):", ", ".join(scores))
    for c, cell in enumerate(cells):
        negative, positive = disk_on[:, c] & ~active[:, c], disk_on[:, c] & active[:, c]
        if not negative.any():
            continue
        rows, cols = np.where(cell)
        rate = {
            m: [(s[k, c] > 0.5).mean() for k in (negative, positive)] for m, s in scores.items()
        }
        print(
            f"{c} {rows.min()}-{rows.max()} {cols.min()}-{cols.max()} | "
            + " / ".join(f"{r[0]:.3f}" for r in rate.values())
            + f" ({negative.sum()}) | "
            + " / ".join(f"{r[1]:.3f}" for r in rate.values())
            + f" ({positive.sum()})"
        )


if __name__ == "__main__":
    torch.set_num_threads(2)
    if sys.argv[1] == "parts":
        parts([Path(p) for p in sys.argv[2:]])
    else:
        calls(Path(sys.argv[2]), *sys.argv[3:5])
