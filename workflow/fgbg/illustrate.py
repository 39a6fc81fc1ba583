"""What a trained model draws, for the per-model figures (reconstruction, traversal): model
in, arrays out; the figures themselves live in `fgbg.figures`."""

from __future__ import annotations

import numpy as np
import torch

# the decoder outputs a traversal shows, under the names its figure gives them
OUTPUT_NAMES = {"foreground": "foreground output", "background": "background output"}
LAYER_NAMES = {"foreground": "foreground layer f", "background": "background layer b"}


def one_hot_states(dims: dict[str, int], amplitude: float, blocks=None, base=None):
    """Latent states with one dimension at +a, then -a, the rest 0, over the dimensions of
    `blocks` (all by default). Returns (labels like ``z1[0] = +5``, {block: (2n, size)}).
    `base` {block: (size,)}: move away from this code (e.g. an image's posterior mean)
    instead of from 0; labels then read ``z_bg[0] +5``."""
    total = sum(dims.values())
    relation = " " if base is not None else " = "
    states, labels, offset = [], [], 0
    for name, size in dims.items():
        for d in range(size if blocks is None or name in blocks else 0):
            for sign in (1, -1):
                state = torch.zeros(total)
                state[offset + d] = sign * amplitude
                states.append(state)
                labels.append(f"{name}[{d}]{relation}{sign * amplitude:+g}")
        offset += size
    stacked = torch.stack(states) if states else torch.zeros(0, total)
    if base is not None:
        stacked = stacked + torch.cat([torch.as_tensor(base[name]).float() for name in dims])
    latents, offset = {}, 0
    for name, size in dims.items():
        latents[name] = stacked[:, offset : offset + size]
        offset += size
    return labels, latents


def traverse_outputs(
    model, dims, amplitude=5.0, likelihood="bernoulli", blocks=None, names=None, base=None
):
    """Every decoder output (foreground, and background where the model has one) for the
    one-hot states of :func:`one_hot_states`: (labels, {figure name: (2n, h, w) means}).
    Background outputs are Bernoulli logits; the foreground follows `likelihood`."""
    names = names or OUTPUT_NAMES
    labels, latents = one_hot_states(dims, amplitude, blocks, base)
    if not labels:
        return labels, {}
    model.eval()
    with torch.no_grad():
        out = model.decode(latents)
    images = {}
    for key, logits in out.items():
        gaussian = key == "foreground" and likelihood != "bernoulli"
        mean = logits if gaussian else torch.sigmoid(logits)
        images[names.get(key, key)] = np.asarray(mean[:, 0].numpy())
    return labels, images
