"""The model families, one module each, behind one interface (see `base`): `dual` (the
thesis's dual VAE), `vae` (the single-VAE baseline), `layered` (the noisy-OR layered VAE).

Every model has `encode(x) -> {name: (mu, logvar)}` (ordered), `decode(latents) ->
{"foreground": ..., ...}`, `loss_terms(x, generator, epoch) -> {"loss", named terms}`
(batch means; `epoch` drives schedules, None outside training) and
`foreground_layer(x, switched_off=())`, the foreground output the evaluation scores; a
model with a g(x) branch also has `background_branch(x)`, the layered one `layers(x)`.
"""

from __future__ import annotations

from torch import nn

from fgbg.config import load_schema, schema_defaults
from fgbg.models.dual import DualVAE
from fgbg.models.layered import LayeredVAE
from fgbg.models.vae import VAE

MODEL_TYPES = {"dual": DualVAE, "vae": VAE, "layered": LayeredVAE}


def resolve_config(model_config: dict, cell_size: int | None = None) -> dict:
    """The model config with every hyperparameter of its type filled in from the schema.

    A null ``fg_kernel`` (the schema's default: "the data's cells.size") becomes `cell_size`,
    or the schema's default cells.size when no size is given (code that runs without the
    workflow; the workflow's configs arrive resolved by fgbg.config.load_config)."""
    config = {**schema_defaults("models", model_config.get("type")), **model_config}
    if config.get("fg_kernel") is None:
        config["fg_kernel"] = cell_size if cell_size is not None else default_cell_size()
    if "fg_channels" in config:
        config["fg_channels"] = list(config["fg_channels"])
    return config


def default_cell_size() -> int:
    """The schema's default cells.size."""
    return int(load_schema()["properties"]["cells"]["properties"]["size"]["default"])


def build_model(model_config: dict, height: int, width: int) -> nn.Module:
    """A freshly initialised model of `model_config["type"]` for H x W images."""
    config = resolve_config(model_config)
    kind = config.get("type")
    if kind not in MODEL_TYPES:
        raise ValueError(f"model type {kind!r} is not one of {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[kind](config, height, width)
