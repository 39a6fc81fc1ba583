import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from fgbg.config import ConfigError, load_config, scenario_params

# Validate and default-fill in place, so that every rule and the report see the same config.
try:
    config.update(load_config(config))
except ConfigError as error:
    sys.stderr.write(f"{error}\n")
    sys.exit(1)

SCENARIOS = list(config["scenarios"])
MODELS = list(config["models"])
SEEDS = [str(seed) for seed in config["seeds"]]


wildcard_constraints:
    scenario="|".join(SCENARIOS),
    model="|".join(MODELS),
    seed="|".join(SEEDS),
    split="train|test",


def all_targets():
    return data_targets() + model_targets()


def data_targets():
    return expand(
        [
            "results/data/{scenario}/train.zarr",
            "results/data/{scenario}/test.zarr",
            "results/data/{scenario}/card.json",
            "results/figures/data/samples_{scenario}.png",
        ],
        scenario=SCENARIOS,
    ) + ["results/figures/data/layout.png"]


def model_targets():
    return expand(
        "results/models/{scenario}/{model}/seed{seed}/model.pt",
        scenario=SCENARIOS,
        model=MODELS,
        seed=SEEDS,
    )


def train_gpus(wildcards):
    """GPUs a training job asks for: none when the config pins the CPU."""
    return 0 if config["training"]["device"] in ("cpu", "mps") else 1
