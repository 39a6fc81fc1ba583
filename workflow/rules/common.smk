import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from fgbg.config import (
    ConfigError,
    load_config,
    read_config_file,
    scenario_params,
    typed,
)
from snakemake.utils import update_config


def stop(error):
    """End parsing with a config error's one line, no traceback."""
    sys.stderr.write(f"{error}\n")
    sys.exit(1)


# The experiment is config.yaml, unless --configfile names files: those replace it (merged
# with each other in order) rather than being merged into it. Read here rather than in the
# Snakefile so that a YAML syntax error names the file and line (Snakemake's names neither).
if not workflow.overwrite_configfiles:
    try:
        read_config_file("config.yaml")
    except ConfigError as error:
        stop(error)

    configfile: "config.yaml"


# Validate and default-fill in place, so that every rule and the report see the same config.
# --config KEY=VALUE values go on top again with their YAML types (Snakemake keeps the values
# inside a nested one, `seeds=[1,2]`, as strings).
try:
    update_config(config, typed(dict(workflow.config_settings.config)))
    config.update(load_config(config))
except ConfigError as error:
    stop(error)

SCENARIOS = list(config["scenarios"])
MODELS = list(config["models"])
SEEDS = [str(seed) for seed in config["seeds"]]
# every training run as (scenario, model, seed), in config order
RUNS = [(s, m, seed) for s in SCENARIOS for m in MODELS for seed in SEEDS]


wildcard_constraints:
    scenario="|".join(SCENARIOS),
    model="|".join(MODELS),
    seed="|".join(SEEDS),
    split="train|test",


def all_targets():
    return data_targets() + model_targets() + result_targets()


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


def result_targets():
    """Evaluation, figures, summary tables and findings (evaluation tables come with them)."""
    return (
        [
            "results/summary.csv",
            "results/summary_wide.csv",
            "results/summary_latent.csv",
            "results/findings.csv",
            "results/figures/summary.png",
        ]
        + expand(
            "results/figures/cell_map_{scenario}_{model}.png",
            scenario=SCENARIOS,
            model=MODELS,
        )
        + [
            f"results/figures/{s}/{m}/seed{seed}/{figure}.png"
            for s, m, seed in RUNS
            for figure in ("reconstruction", "traversal", "training_curves")
        ]
    )


def run_tables(name):
    """One per-run evaluation table (e.g. rates.csv) of every run, in RUNS order."""
    return [f"results/eval/{s}/{m}/seed{seed}/{name}" for s, m, seed in RUNS]


def seed_tables(name):
    """Input function: the table `name` of every seed of the job's scenario and model."""

    def paths(wildcards):
        return expand(
            "results/eval/{scenario}/{model}/seed{seed}/{name}",
            scenario=wildcards.scenario,
            model=wildcards.model,
            seed=SEEDS,
            name=name,
        )

    return paths


def is_dual(model):
    return config["models"][model]["type"] == "dual"


def dual_model():
    """The first dual model in the config (the one the thesis findings test), or None."""
    return next((m for m in MODELS if is_dual(m)), None)
