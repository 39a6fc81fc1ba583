"""Load, default-fill and validate the workflow config.

The JSON schema (workflow/schemas/config.schema.yaml) describes every key and fills the
defaults; :func:`check_semantics` adds what a schema cannot express. Every failure is a
:class:`ConfigError` whose message is one line naming the offending key and value.
Pure Python on purpose: the Snakefile calls this at parse time.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config value is invalid; str(error) is one line naming the key and value."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config error: {key}: {message}")


def _with_defaults(validator_class):
    """Extend a jsonschema validator so that it fills each property's `default`."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _section_properties(section: str) -> dict:
    schema = load_schema()["properties"][section]
    named = section in ("models", "references")
    properties = schema["additionalProperties" if named else "properties"]
    return properties["properties"] if named else properties


def schema_defaults(section: str, kind: str | None = None) -> dict:
    """The schema's defaults of one section's keys: `training`, or `models` / `references`
    (per variant; with `kind`, a model type, only the keys of that type).

    The single home of these defaults; code that runs without the workflow (tests,
    notebooks) fills its configs from here too.
    """
    return {
        k: copy.deepcopy(v["default"])
        for k, v in _section_properties(section).items()
        if "default" in v and (kind is None or kind in v.get("x-types", [kind]))
    }


RESTART_SEED_STEP = 1000  # restart k of seed s trains with seed s + 1000 k


def training_seed(config: dict, name: str, seed: int) -> int:
    """The seed a model's training job uses for seed `seed`'s data: `seed`, or for a model
    with `training.restart` k another initialisation, seed + 1000 k."""
    return seed + RESTART_SEED_STEP * model_training(config, name)[1].get("restart", 0)


def model_training(config: dict, name: str) -> tuple[dict, dict]:
    """(model config without its `training` key, the training settings its jobs use: the
    training block with the model's own `training` keys over it)."""
    model = dict(config["models"][name])
    overrides = model.pop("training", None) or {}
    return model, {**config["training"], **overrides}


def _only_type_keys(config: dict, given: dict, section: str = "models") -> None:
    """Keep in each model (or reference) only the keys of its type (`x-types` in the
    schema), so that a default of one family never changes another family's parameters (and
    reruns its jobs); a key the user gave that its type does not have is an error."""
    properties = _section_properties(section)
    for name, model in config[section].items():
        kind = model["type"]
        for key in list(model):
            types = properties.get(key, {}).get("x-types", [kind])
            if kind not in types:
                if key in given.get(name, {}):
                    raise ConfigError(
                        f"{section}.{name}.{key}",
                        f"not a key of type {kind} (it belongs to {', '.join(types)})",
                    )
                del model[key]


# The cell size a model or reference knows: this key of it, null meaning the data's cells.size.
CELL_SIZE_KEYS = {"models": "fg_kernel", "references": "cell_size"}


def resolve_cell_sizes(config: dict) -> None:
    """Fill every null cell size (models' fg_kernel, references' cell_size) with the data's
    cells.size, in place, so that the training and evaluation jobs' params carry the value
    (a change of cells.size reruns them). A value that disagrees with cells.size is an error:
    the prior follows the data (SPEC section 9)."""
    size = config["cells"]["size"]
    for section, key in CELL_SIZE_KEYS.items():
        for name, method in config[section].items():
            if key not in method:
                continue
            if method[key] is None:
                method[key] = size
            elif method[key] != size:
                raise ConfigError(
                    f"{section}.{name}.{key}", f"{method[key]} disagrees with cells.size {size}"
                )


def _key(path) -> str:
    """A key path as written in messages: `scenarios.x90.disks[0].center`."""
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key or "<config>"


def _schema_error(error) -> ConfigError:
    """One line for a jsonschema error, naming the offending key itself where possible."""
    path = list(error.path)
    if "propertyNames" in error.absolute_schema_path:
        return ConfigError(
            _key(path),
            f"name {error.instance!r} is not usable as a wildcard "
            "(letters, digits and underscores, starting with a letter)",
        )
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return ConfigError(
            _key([*path, unknown[0]]),
            f"unknown key (allowed here: {', '.join(allowed)})",
        )
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return ConfigError(_key([*path, missing[0]]), "required key is missing")
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return ConfigError(_key(path), message)


def validate_schema(config: dict) -> dict:
    """Return a default-filled copy of `config`, or raise ConfigError on the first error."""
    config = copy.deepcopy(dict(config))
    validator = _with_defaults(jsonschema.Draft202012Validator)(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(e.path)))
    if errors:
        raise _schema_error(errors[0])
    return config


def scenario_params(config: dict, name: str) -> dict:
    """The resolved generation parameters of one scenario (globals with its overrides)."""
    scenario = config["scenarios"][name]
    return {
        "image": dict(config["image"]),
        "cells": {**copy.deepcopy(config["cells"]), **scenario.get("cells", {})},
        "disks": copy.deepcopy(scenario["disks"]),
        "noise": {**config["noise"], **scenario.get("noise", {})},
        "binarize": {**config["binarize"], **scenario.get("binarize", {})},
    }


def _disk_reaches_image(disk: dict, height: int, width: int) -> bool:
    """True when at least one pixel centre lies in the disk."""
    (cy, cx), r = disk["center"], disk["diameter"] / 2
    # nearest pixel centre to the disk centre
    py = min(max(math.floor(cy - 0.5) + 0.5, 0.5), height - 0.5)
    px = min(max(math.floor(cx - 0.5) + 0.5, 0.5), width - 0.5)
    for dy, dx in itertools.product((0, 1), repeat=2):
        y, x = min(py + dy, height - 0.5), min(px + dx, width - 0.5)
        if (y - cy) ** 2 + (x - cx) ** 2 <= r**2:
            return True
    return False


def check_semantics(config: dict) -> None:
    """Checks a schema cannot express; raise ConfigError on the first failure."""
    height, width = config["image"]["height"], config["image"]["width"]
    size = config["cells"]["size"]
    positions = config["cells"]["positions"]
    for i, (row, col) in enumerate(positions):
        if row < 0 or col < 0 or row + size > height or col + size > width:
            raise ConfigError(
                f"cells.positions[{i}]",
                f"cell at [{row}, {col}] of size {size} does not fit in the "
                f"{height} x {width} image",
            )
    for (i, a), (j, b) in itertools.combinations(enumerate(positions), 2):
        if abs(a[0] - b[0]) < size and abs(a[1] - b[1]) < size:
            raise ConfigError(
                f"cells.positions[{j}]",
                f"cell at {list(b)} overlaps cell {i} at {list(a)}",
            )
    for name in config["references"]:
        if name in config["models"]:
            raise ConfigError(
                f"references.{name}", "a model has the same name (results share one namespace)"
            )
    for name in config["scenarios"]:
        params = scenario_params(config, name)
        for k, disk in enumerate(params["disks"]):
            if not _disk_reaches_image(disk, height, width):
                raise ConfigError(
                    f"scenarios.{name}.disks[{k}].center",
                    f"disk at {disk['center']} with diameter {disk['diameter']} covers "
                    "no pixel of the image",
                )
        if not params["binarize"]["enabled"]:
            for model_name, model in config["models"].items():
                if model.get("likelihood") == "bernoulli":
                    raise ConfigError(
                        f"models.{model_name}.likelihood",
                        f"bernoulli needs binary images but scenario {name} has "
                        "binarize.enabled: false (use gaussian)",
                    )
            for ref_name, reference in config["references"].items():
                if reference["type"] == "opening":
                    raise ConfigError(
                        f"references.{ref_name}.type",
                        f"opening is a filter for binary images but scenario {name} has "
                        "binarize.enabled: false",
                    )


def check_names(config: dict) -> None:
    """Scenario and model names must be text: YAML reads `off` or `yes` as a boolean unless
    quoted, and `2020` as a number."""
    for section in ("scenarios", "models"):
        for name in config.get(section) or {}:
            if isinstance(name, bool):
                spelling = "on, yes or true" if name else "off, no or false"
                raise ConfigError(
                    section,
                    f"a name is read by YAML as the boolean {name} (from {spelling}): "
                    f'put it in quotes, e.g. "{spelling.split(",")[0]}":',
                )
            if not isinstance(name, str):
                raise ConfigError(
                    section,
                    f"name {name!r} is read by YAML as a number: a name starts with a letter, "
                    f"e.g. s{name}",
                )


def load_config(config: dict) -> dict:
    """Validate `config` (a dict as Snakemake loaded it); return it with defaults filled."""
    check_names(config)
    given = copy.deepcopy(dict(config.get("models") or {}))
    given_references = copy.deepcopy(dict(config.get("references") or {}))
    config = validate_schema(config)
    _only_type_keys(config, given)
    _only_type_keys(config, given_references, "references")
    check_semantics(config)
    resolve_cell_sizes(config)
    return config


def read_config_file(path) -> dict:
    """The content of a YAML config file; a syntax error names the file, line and column."""
    try:
        with open(path) as fh:
            config = yaml.safe_load(fh)
    except OSError as error:
        raise ConfigError(str(path), f"cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(where, f"not valid YAML: {problem}") from None
    if not isinstance(config, dict):
        raise ConfigError(str(path), "must hold keys at the top level (a YAML mapping)")
    return config


def typed(value):
    """A `--config KEY=VALUE` value with its YAML types: Snakemake keeps the values inside a
    nested one (`--config "training={epochs: 2}"`, `seeds=[1,2]`) as strings."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def load_config_file(path) -> dict:
    return load_config(read_config_file(path))


if __name__ == "__main__":  # python -m fgbg.config FILE...: check config files without Snakemake
    import sys

    for arg in sys.argv[1:]:
        try:
            content = read_config_file(arg)  # its errors name the file
        except ConfigError as error:
            sys.exit(str(error))
        try:
            load_config(content)
        except ConfigError as error:
            sys.exit(f"{arg}: {error}")
        print(f"{arg}: valid")
