"""Bad configs stop the workflow with one line naming the key; good ones get defaults."""

import copy
from pathlib import Path

import pytest
import yaml
from fgbg.config import ConfigError, load_config, scenario_params
from workflow_runner import snakemake

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
    (
        "image_not_divisible_by_pool",
        _set(["image", "height"], 66),
        "models.dual.pool_size",
        "divisible",
    ),
    (
        "pool_size_not_dividing",
        _set(["models", "dual", "pool_size"], 7),
        "models.dual.pool_size",
        "7",
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


# Through the real command line: parse-time validation stops `snakemake -n` cleanly.
SNAKEMAKE_CASES = [
    "overlapping_cells",
    "scenario_name_with_slash",
    "unknown_key",
    "missing_cell_positions",
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
