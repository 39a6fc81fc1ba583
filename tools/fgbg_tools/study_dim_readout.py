"""STUDY (intensity-02): why the layered model calls dim cells badly on intensity images.

For a trained x90_dim layered model (results/models/x90_dim/layered/seedS/model.pt) and
the first 500 validation images, per cell: the AUROC of the model's place evidence as the
readout computes it (the other places' gates at the refined means), of the same evidence
with the other places left out, and of the matched filter (the sum of the cell's pixels,
the exact ranking for a uniform cell under i.i.d. Gaussian noise, away from the disk); the
TPR/FPR at 0.5 of the readout's P_p; the learned u and each cell's template light on and
off the cell's own square.

    python study_dim_readout.py RESULTS_DIR SEED
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from fgbg.models.layered import inference
from fgbg.models.layered.foreground import template_window
from fgbg.store import open_split
from fgbg.training import load_trained

results, seed = sys.argv[1], sys.argv[2]
model, _ = load_trained(f"{results}/models/x90_dim/layered/seed{seed}/model.pt")
model.eval()
data = open_split(f"{results}/data/x90_dim/seed{seed}/val.zarr").load()
n = 500
x = torch.as_tensor(data["images"].values[:n]).float().unsqueeze(1)
cells = data["cell_mask"].values.astype(bool)
disks = data["disk_mask"].values.astype(bool)
active = data["cell_active"].values[:n].astype(bool)
disk_on = data["disk_active"].values[:n].astype(bool)
fg = model.foreground
k = fg.kernel
u = float(model.composition.values()[0])


def evidence(x, neighbours: bool):
    """(N, places) the readout's place evidence; without `neighbours`, every other place's
    gate is closed (the evidence of a place alone against the background)."""
    posteriors = inference.refine(model, x, model.encode(x))
    means = {name: mu for name, (mu, _) in posteriors.items()}
    gate_logits = fg.gate_logits
    if not neighbours:
        fg.gate_logits = lambda z: torch.full_like(gate_logits(z), -1e4)
    try:
        with torch.no_grad():
            return inference.place_evidence(model, x, means)
    finally:
        fg.gate_logits = gate_logits


with_n = torch.cat([evidence(b, True) for b in x.split(50)]).numpy()
alone = torch.cat([evidence(b, False) for b in x.split(50)]).numpy()
rate = fg.place_rate.clamp(1e-4, 1 - 1e-4).numpy()
prob = 1 / (1 + np.exp(-(np.log(rate / (1 - rate)) + with_n)))
shape = torch.exp(F.logsigmoid(10 * fg.templates))[0].detach()
shape = (shape / shape.amax(0, keepdim=True)).numpy()
window = template_window(k)
print(f"seed {seed}: learned u {u:.3f} (cells 0.2), sd {float(model.composition.values()[3]):.3f} (0.4)")
print("cell | where | AUROC: readout, others left out, matched filter | TPR FPR at 0.5 | template light on the cell, off it")
for c in range(len(cells)):
    ys, xs = np.nonzero(cells[c])
    place = int(ys.mean() // k) * fg.grid[1] + int(xs.mean() // k)
    covering = disks[:, cells[c]].any(1)
    under = disk_on[:, covering].any(1) if covering.any() else np.zeros(n, bool)
    top, left = (ys.mean() // k) * k - k // 2, (xs.mean() // k) * k - k // 2
    own = np.zeros((window, window), bool)
    own[ys.min() - int(top): ys.max() - int(top) + 1, xs.min() - int(left): xs.max() - int(left) + 1] = True
    t = shape[:, place].reshape(window, window)
    matched = x[:, 0].numpy()[:, cells[c]].sum(1)
    for name, sel in (("disk off" if covering.any() else "outside", ~under), ("disk on", under)):
        if sel.sum() < 20:
            continue
        y = active[sel, c]
        aucs = [roc_auc_score(y, s[sel]) for s in (with_n[:, place], alone[:, place], matched)]
        called = prob[sel, place] > 0.5
        print(f"{c} | {name} | {aucs[0]:.3f} {aucs[1]:.3f} {aucs[2]:.3f} | "
              f"{called[y].mean():.3f} {called[~y].mean():.3f} | {u * t[own].sum():.1f} {u * t[~own].sum():.1f}")
