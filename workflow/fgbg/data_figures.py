"""Figures of the synthetic data: sample images per scenario and the shared layout."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle  # noqa: E402

from fgbg.figures import IMAGE_RANGE, blank_axes  # noqa: E402
from fgbg.layout import overlaps  # noqa: E402

DPI = 120  # the data figures have small panels with text


def _disk_circle(disk: dict, offset: float = 0.0, **style) -> Circle:
    # Pixel (row, col) is drawn centred on (col, row); the config's coordinates put pixel
    # centres at +0.5, so a disk centre (cy, cx) lands at (cx - 0.5, cy - 0.5).
    cy, cx = disk["center"]
    return Circle((cx - 0.5, cy - 0.5), disk["diameter"] / 2 + offset, fill=False, **style)


def plot_samples(ds, scenario: str, n: int = 8, columns: int = 4):
    """The first `n` images of a split, titled with which cells and disks are active."""
    n = min(n, ds.sizes["sample"])
    images = ds["images"][:n].values
    cells, disks = ds["cell_active"][:n].values, ds["disk_active"][:n].values
    rows = -(-n // columns)
    binary = ds["images"].dtype == np.uint8
    # intensities: one grey scale over the shown images' 1st to 99th percentile
    shown = dict(IMAGE_RANGE)
    if not binary:
        shown["vmin"], shown["vmax"] = (float(v) for v in np.percentile(images, [1, 99]))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.9 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        blank_axes(ax)
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i], **shown)
        disk_state = " ".join(f"D{k}:{'on' if a else 'off'}" for k, a in enumerate(disks[i]))
        cells_on = f"{int(cells[i].sum())}/{cells.shape[1]} cells on"
        ax.set_title(f"image {i}: {cells_on}\n{disk_state}", fontsize=8)
    split = ds.attrs.get("split", "")
    kind = (
        "binarized"
        if binary
        else "intensities, grey scale {vmin:.2f} to {vmax:.2f}".format(**shown)
    )
    fig.suptitle(f"{scenario}: first {n} {split} images ({kind})")
    fig.tight_layout()
    return fig


def plot_layout(datasets: dict):
    """One panel per scenario: the cells (numbered) and the disks (outlined, with their
    activation probability; a soft edge dotted one edge width inside and outside); each
    title lists the cells that overlap each disk."""
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4 * len(datasets), 4.4), squeeze=False, layout="constrained"
    )  # constrained: room for the suptitle above three-line panel titles
    for ax, (scenario, ds) in zip(axes.flat, datasets.items(), strict=True):
        cells, disk_masks = ds["cell_mask"].values > 0, ds["disk_mask"].values > 0
        canvas = 0.25 * disk_masks.any(axis=0) + 0.75 * cells.any(axis=0)
        ax.imshow(canvas, **IMAGE_RANGE)
        for k, mask in enumerate(cells):
            rows, cols = np.nonzero(mask)
            ax.text(cols.mean(), rows.mean(), str(k), ha="center", va="center", fontsize=8)
        overlap = overlaps(cells, disk_masks)
        lines = []
        for k, disk in enumerate(ds.attrs["generation"]["disks"]):
            ax.add_patch(_disk_circle(disk, edgecolor="tab:red", linewidth=1.5))
            edge = disk.get("edge", 0)
            for offset in (-edge, edge) if edge else ():  # a soft edge: 84 % and 16 % light
                ax.add_patch(_disk_circle(disk, offset, edgecolor="tab:red", linestyle=":"))
            cy, cx = disk["center"]
            ax.text(cx - 0.5, cy - 0.5, f"D{k}", color="tab:red", ha="center", fontsize=9)
            under = ",".join(map(str, np.flatnonzero(overlap[:, k])))
            soft = f" edge {edge:g}" if edge else ""
            lines.append(f"D{k} p={disk['probability']:g}{soft}: cells {under}")
        blank_axes(ax)
        ax.set_title(f"{scenario}\n" + ("\n".join(lines) or "no background disks"), fontsize=9)
    fig.suptitle("Layout: cells (numbered) and background disks (red)")
    return fig
