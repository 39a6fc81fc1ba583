"""Bad configs stop the workflow with one line naming the key; good ones get defaults."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runner import snakemake

from fgbg.config import ConfigError, load_config, read_config_file, scenario_params, typed

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def _set(path, value):
    """An edit that sets config[path...] = value (path: keys and list indices)."""

    def edit(config):
        node = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


def _rename_scenario(new):
    def edit(config):
        config["scenarios"][new] = config["scenarios"].pop("x90")

    return edit


def _drop(path):
    def edit(config):
        node = config
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return edit


# (id, edit, the key the message must name, a word the message must contain)
BAD_CONFIGS = [
    ("cell_outside_image", _set(["cells", "positions", 0], [57, 6]), "cells.positions[0]", "fit"),
    ("cell_negative", _set(["cells", "positions", 3], [-1, 6]), "cells.positions[3]", "fit"),
    (
        "overlapping_cells",
        _set(["cells", "positions", 1], [6, 8]),
        "cells.positions[1]",
        "overlaps",
    ),
    ("cell_probability_above_1", _set(["cells", "probability"], 1.5), "cells.probability", "1.5"),
    (
        "disk_probability_negative",
        _set(["scenarios", "x90", "disks", 0, "probability"], -0.1),
        "scenarios.x90.disks[0].probability",
        "-0.1",
    ),
    ("negative_n_train", _set(["data", "n_train"], -3), "data.n_train", "-3"),
    ("zero_chunk_size", _set(["data", "chunk_size"], 0), "data.chunk_size", "0"),
    ("scenario_name_with_dash", _rename_scenario("x-90"), "scenarios", "'x-90'"),
    ("scenario_name_with_slash", _rename_scenario("a/b"), "scenarios", "'a/b'"),
    ("unknown_key", _set(["data", "n_valid"], 3), "data.n_valid", "unknown key"),
    ("unknown_top_level_key", _set(["epochs"], 3), "epochs", "unknown key"),
    ("noise_region_invalid", _set(["noise", "region"], "inside"), "noise.region", "'inside'"),
    (
        "scenario_noise_region_invalid",
        _set(["scenarios", "x50", "noise"], {"region": "x"}),
        "scenarios.x50.noise.region",
        "'x'",
    ),
    (
        "disk_outside_image",
        _set(["scenarios", "x50", "disks", 0, "center"], [200, 15]),
        "scenarios.x50.disks[0].center",
        "no pixel",
    ),
    ("duplicate_seeds", _set(["seeds"], [1, 1]), "seeds", "non-unique"),
    ("missing_cell_positions", _drop(["cells", "positions"]), "cells.positions", "missing"),
    ("missing_disks", _drop(["scenarios", "x90", "disks"]), "scenarios.x90.disks", "missing"),
    ("wrong_type_n_train", _set(["data", "n_train"], "many"), "data.n_train", "integer"),
    ("wrong_type_cell_size", _set(["cells", "size"], 6.5), "cells.size", "integer"),
    (
        "wrong_type_position",
        _set(["cells", "positions", 0], [4.5, 6]),
        "cells.positions[0][0]",
        "integer",
    ),
    (
        "bernoulli_with_binarize_off",
        _set(["binarize", "enabled"], False),
        "models.dual.likelihood",
        "bernoulli",
    ),
    ("no_scenarios", _set(["scenarios"], {}), "scenarios", "non-empty"),
    (
        "fg_kernel_disagrees_with_cells",
        _set(["models", "layered", "fg_kernel"], 4),
        "models.layered.fg_kernel",
        "4 disagrees with cells.size 6",
    ),
    (
        "model_key_that_does_not_exist",
        _set(["models", "layered", "fg_painter"], "shared"),
        "models.layered.fg_painter",
        "unknown key (allowed here:",
    ),
    (
        "reference_cell_size_disagrees",
        _set(["references", "opening", "cell_size"], 5),
        "references.opening.cell_size",
        "5 disagrees with cells.size 6",
    ),
    (
        "model_training_key_not_per_model",
        _set(["models", "dual", "training"], {"device": "cpu"}),
        "models.dual.training.device",
        "unknown key",
    ),
    (
        "model_training_bad_value",
        _set(["models", "vae", "training"], {"batch_size": 0}),
        "models.vae.training.batch_size",
        "minimum",
    ),
    (
        "reference_key_of_another_type",
        _set(["references", "raw", "components"], [8]),
        "references.raw.components",
        "not a key of type raw",
    ),
]


def bad_config(edit) -> dict:
    config = copy.deepcopy(DEFAULT)
    edit(config)
    return config


@pytest.mark.parametrize(
    ("edit", "key", "word"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_raises_one_line_naming_the_key(edit, key, word):
    with pytest.raises(ConfigError) as caught:
        load_config(bad_config(edit))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config error: {key}: "), message
    assert word in message, message


def test_default_config_is_valid_and_reproduces_the_thesis_scenarios():
    config = load_config(DEFAULT)
    assert list(config["scenarios"]) == ["x90", "x50", "x90_20"]
    assert config["data"]["n_train"] == 2000 and config["data"]["n_test"] == 1000
    params = scenario_params(config, "x90_20")
    assert [d["probability"] for d in params["disks"]] == [0.9, 0.2]
    assert params["noise"] == {"mean": 0.3, "sd": 0.4, "region": "background"}
    assert params["binarize"] == {"enabled": True, "threshold": 0.5}


def test_missing_keys_take_schema_defaults():
    minimal = {
        "cells": {"positions": [[0, 0]]},
        "scenarios": {"s": {"disks": [{"center": [30, 30]}]}},
        "models": {"m": {"type": "vae"}},
    }
    config = load_config(minimal)
    assert config["image"] == {"height": 60, "width": 60}
    assert config["data"]["chunk_size"] == 1000
    assert config["scenarios"]["s"]["disks"][0] == {
        "center": [30, 30],
        "diameter": 30,
        "intensity": 0.6,
        "probability": 0.9,
    }


def test_scenario_overrides_win_over_globals():
    config = copy.deepcopy(DEFAULT)
    config["scenarios"]["x50"]["noise"] = {"region": "everywhere"}
    params = scenario_params(load_config(config), "x50")
    assert params["noise"] == {"mean": 0.3, "sd": 0.4, "region": "everywhere"}


def test_a_scenario_sets_its_own_cell_intensity():
    config = copy.deepcopy(DEFAULT)
    config["scenarios"]["x50"]["cells"] = {"intensity": 0.2}
    config = load_config(config)
    assert scenario_params(config, "x50")["cells"]["intensity"] == 0.2
    assert scenario_params(config, "x90")["cells"]["intensity"] == 0.9
    config["scenarios"]["x50"]["cells"] = {"size": 4}  # one geometry per config
    with pytest.raises(ConfigError, match=r"scenarios\.x50\.cells.*size"):
        load_config(config)


def test_intensity_images_refuse_the_opening_naming_it():
    config = read_config_file(ROOT / "config" / "intensity.yaml")
    load_config(config)  # the shipped intensity config leaves it out
    config["references"]["opening"] = {"type": "opening"}
    with pytest.raises(ConfigError, match=r"references\.opening\.type.*binary images"):
        load_config(config)


# Through the real command line: parse-time validation stops `snakemake -n` cleanly.
SNAKEMAKE_CASES = [
    "overlapping_cells",
    "scenario_name_with_slash",
    "unknown_key",
    "missing_cell_positions",
    "fg_kernel_disagrees_with_cells",
]


@pytest.mark.parametrize("case", SNAKEMAKE_CASES)
def test_bad_config_stops_snakemake_dry_run_with_one_line(tmp_path, case):
    _, edit, key, _ = next(c for c in BAD_CONFIGS if c[0] == case)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(bad_config(edit)))
    result = snakemake(tmp_path, "-n", configfile=configfile)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"config error: {key}: "), result.stderr


@pytest.mark.parametrize(
    ("config", "key"),
    [({}, "cells"), ({"cells": {"positions": [[0, 0]]}}, "scenarios")],
)
def test_missing_top_level_key_is_named(config, key):
    with pytest.raises(ConfigError, match=f"^config error: {key}: required key is missing$"):
        load_config(config)


def test_models_default_to_dual_and_vae():
    config = {"cells": {"positions": [[0, 0]]}, "scenarios": {"a": {"disks": [{"center": [9, 9]}]}}}
    assert {name: m["type"] for name, m in load_config(config)["models"].items()} == {
        "dual": "dual",
        "vae": "vae",
    }


# Issue 10: a user's own config file, names YAML does not read as text, YAML syntax errors.


def _tiny(scenarios: dict, models=("vae",), seeds=(3,)) -> dict:
    config = copy.deepcopy(DEFAULT)
    config["scenarios"] = scenarios
    config["models"] = {name: DEFAULT["models"][name] for name in models}
    config["seeds"] = list(seeds)
    config["references"] = {}
    return config


def _jobs(output: str, wildcard: str) -> set[str]:
    """The values of one wildcard over the jobs of a dry run's output."""
    return {m.split("=")[1] for m in re.findall(rf"\b{wildcard}=\w+", output)}


def test_user_configfile_replaces_config_yaml(tmp_path):
    """--configfile my.yaml runs exactly my.yaml's experiment, not config.yaml's as well."""
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    mine = tmp_path / "my.yaml"
    mine.write_text(yaml.safe_dump(_tiny({"mine": DEFAULT["scenarios"]["x50"]})))
    result = snakemake(tmp_path, "-n", configfile=mine)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert _jobs(output, "scenario") == {"mine"}
    assert _jobs(output, "model") == {"vae"} and _jobs(output, "seed") == {"3"}
    # --config goes on top, with YAML types also inside nested values
    result = snakemake(
        tmp_path, "-n", "--config", "seeds=[4, 5]", "training={epochs: 2}", configfile=mine
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert _jobs(output, "scenario") == {"mine"} and _jobs(output, "seed") == {"4", "5"}
    # without --configfile, config.yaml is the experiment
    result = snakemake(tmp_path, "-n", configfile=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert _jobs(output, "scenario") == {"x90", "x50", "x90_20"}


def test_typed_config_overrides():
    assert typed({"training": {"epochs": "2", "device": "cuda:0"}, "seeds": ["4"]}) == {
        "training": {"epochs": 2, "device": "cuda:0"},
        "seeds": [4],
    }


# YAML reads these names as booleans or numbers: (name as written, section, words in message)
YAML_NAMES = [
    ("off", "scenarios", "boolean False"),
    ("yes", "scenarios", "boolean True"),
    ("on", "scenarios", "boolean True"),
    ("no", "scenarios", "boolean False"),
    ("2020", "scenarios", "number"),
    ("yes", "models", "boolean True"),
]


def _with_name(section: str, name: str) -> str:
    """config.yaml's text with the first scenario (or model) renamed to `name` unquoted."""
    text = (ROOT / "config.yaml").read_text()
    first = {"scenarios": "  x90:", "models": "  vae:"}[section]
    return text.replace(f"\n{first}\n", f"\n  {name}:\n", 1)


@pytest.mark.parametrize(("name", "section", "words"), YAML_NAMES)
def test_name_yaml_reads_as_bool_or_number_is_named(tmp_path, name, section, words):
    path = tmp_path / "config.yaml"
    path.write_text(_with_name(section, name))
    with pytest.raises(ConfigError) as caught:
        load_config(read_config_file(path))
    message = str(caught.value)
    assert message.startswith(f"config error: {section}: ") and words in message, message
    assert "\n" not in message


def test_name_yaml_reads_as_bool_stops_snakemake_with_one_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(_with_name("scenarios", "off"))
    result = snakemake(tmp_path, "-n", configfile=path)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip() == (
        "config error: scenarios: a name is read by YAML as the boolean False (from off, no or "
        'false): put it in quotes, e.g. "off":'
    )
    assert not (tmp_path / "results").exists()


def test_quoted_yaml_name_is_fine(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(_with_name("scenarios", '"off"'))
    assert "off" in load_config(read_config_file(path))["scenarios"]


BROKEN_YAML = "image:\n  height: 60\nscenarios:\n  x90: {disks: [}\n"


def test_yaml_syntax_error_in_config_yaml_names_file_and_line(tmp_path):
    (tmp_path / "config.yaml").write_text(BROKEN_YAML)
    result = snakemake(tmp_path, "-n", configfile=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().startswith(
        "config error: config.yaml, line 4, column 17: not valid YAML: "
    ), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_config_checker_names_file_and_line_of_a_configfile(tmp_path):
    """Snakemake reads --configfile files itself and names neither file nor line; the
    project's checker (docs/configuration.md, "Inputs that fail") does."""
    path = tmp_path / "my.yaml"
    path.write_text(BROKEN_YAML)
    command = [sys.executable, "-m", "fgbg.config", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT / "workflow")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"config error: {path}, line 4, column 17: ")
    path.write_text((ROOT / "config.yaml").read_text())
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT / "workflow")
    assert result.returncode == 0 and result.stdout.strip() == f"{path}: valid"


def test_each_model_keeps_only_the_keys_of_its_type():
    config = copy.deepcopy(DEFAULT)
    config["models"] = {"d": {"type": "dual"}, "l": {"type": "layered"}, "v": {"type": "vae"}}
    models = load_config(config)["models"]
    # a layered default (or a dual one) never reaches another family's parameters
    assert "fg_kl_weight" in models["l"] and "fg_kl_weight" not in models["d"]
    assert "z1_dim" in models["d"] and "z1_dim" not in models["l"] and "z1_dim" not in models["v"]
    assert models["v"]["latent_dim"] == 5 and models["l"]["fg_kernel"] == 6


def test_a_key_of_another_type_is_named():
    config = copy.deepcopy(DEFAULT)
    config["models"] = {"l": {"type": "layered", "z1_dim": 3}}
    with pytest.raises(ConfigError, match=r"^config error: models\.l\.z1_dim: not a key of type"):
        load_config(config)


def test_a_models_training_keys_win_for_its_jobs_only():
    from fgbg.config import model_training

    config = copy.deepcopy(DEFAULT)
    config["training"]["batch_size"] = 32
    config["models"] = {"a": {"type": "dual", "training": {"patience": 7}}, "b": {"type": "vae"}}
    resolved = load_config(config)
    model_a, training_a = model_training(resolved, "a")
    model_b, training_b = model_training(resolved, "b")
    assert "training" not in model_a and model_a["type"] == "dual"
    assert (
        training_a["patience"] == 7 and training_b["patience"] == resolved["training"]["patience"]
    )
    assert training_a["batch_size"] == training_b["batch_size"] == 32


def test_a_restart_trains_another_initialisation_on_the_same_seeds_data():
    from fgbg.config import training_seed

    config = copy.deepcopy(DEFAULT)
    config["models"] = {
        "a": {"type": "layered"},
        "b": {"type": "layered", "training": {"restart": 2}},
    }
    resolved = load_config(config)
    assert training_seed(resolved, "a", 14) == 14
    assert training_seed(resolved, "b", 14) == 2014


def test_cell_size_follows_the_data():
    """cells.size 4: every model's fg_kernel and the cell-sized references' cell_size become 4
    (the training jobs' params carry it) and the models build and run with a 4 x 4 kernel."""
    import torch

    from fgbg.models import build_model

    config = copy.deepcopy(DEFAULT)
    config["cells"]["size"] = 4
    resolved = load_config(config)
    assert {m["fg_kernel"] for m in resolved["models"].values()} == {4}
    assert resolved["references"]["opening"]["cell_size"] == 4
    assert "cell_size" not in resolved["references"]["raw"]
    assert load_config(DEFAULT)["models"]["dual"]["fg_kernel"] == 6
    x = (torch.rand(2, 1, 60, 60) < 0.3).float()
    for model_config in resolved["models"].values():
        model = build_model(model_config, 60, 60)
        shapes = {tuple(p.shape[-2:]) for p in model.parameters() if p.dim() == 4}
        assert (4, 4) in shapes and (6, 6) not in shapes, (model_config["type"], shapes)
        with torch.no_grad():
            assert model.foreground_layer(x).shape == (2, 1, 60, 60)


def test_an_agreeing_override_is_fine():
    config = copy.deepcopy(DEFAULT)
    config["models"]["layered"]["fg_kernel"] = 6
    assert load_config(config)["models"]["layered"]["fg_kernel"] == 6


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "config").rglob("*.yaml"))
)
def test_every_shipped_config_is_valid_and_builds_its_models(path):
    from fgbg.config import model_training
    from fgbg.models import build_model

    config = load_config(read_config_file(ROOT / path))
    height, width = config["image"]["height"], config["image"]["width"]
    for name in config["models"]:
        model_config, _training = model_training(config, name)
        build_model(model_config, height, width)  # a model-level error would raise here
