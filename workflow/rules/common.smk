import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from fgbg.config import (
    ConfigError,
    load_config,
    model_training,
    read_config_file,
    scenario_params,
    training_seed,
    typed,
)
from fgbg.generate import data_seed
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
MODELS = list(config["models"])  # trained
REFERENCES = list(config["references"])  # no training: scored like the models
METHODS = MODELS + REFERENCES
SEEDS = [str(seed) for seed in config["seeds"]]
# every trained run and every evaluated run as (scenario, method, seed), in config order
TRAIN_RUNS = [(s, m, seed) for s in SCENARIOS for m in MODELS for seed in SEEDS]
RUNS = [(s, m, seed) for s in SCENARIOS for m in METHODS for seed in SEEDS]
# The seed whose model is drawn (reconstruction, traversal, decomposition): a picture of one
# run illustrates; the tables and the summary figures hold every seed.
FIGURE_SEED = SEEDS[0]


def replicate(seed):
    """The data replicate a training seed uses: its own (per_seed) or the shared one."""
    return f"seed{seed}" if config["data"]["replicates"] == "per_seed" else "shared"


REPLICATES = list(dict.fromkeys(replicate(seed) for seed in SEEDS))


wildcard_constraints:
    scenario="|".join(SCENARIOS),
    model="|".join(METHODS),
    seed="|".join(SEEDS),
    replicate="|".join(REPLICATES),
    split="train|val|test",


def all_targets():
    return data_targets() + model_targets() + result_targets()


def data_targets():
    return (
        expand(
            "results/data/{scenario}/{replicate}/{name}",
            scenario=SCENARIOS,
            replicate=REPLICATES,
            name=["train.zarr", "val.zarr", "test.zarr", "card.json"],
        )
        + expand("results/figures/data/samples_{scenario}.png", scenario=SCENARIOS)
        + ["results/figures/data/layout.png"]
    )


def split_store(split):
    """Input function: the `split` store of the job's scenario and seed's data replicate."""

    def path(wildcards):
        return f"results/data/{wildcards.scenario}/{replicate(wildcards.seed)}/{split}.zarr"

    return path


def replicate_entropy(wildcards):
    """The generator entropy of the job's data replicate (fgbg.generate.data_seed)."""
    seed = None if wildcards.replicate == "shared" else int(wildcards.replicate[4:])
    return data_seed(config["data"]["seed"], seed)


def first_replicate_store(scenario, split="train"):
    return f"results/data/{scenario}/{REPLICATES[0]}/{split}.zarr"


def model_targets():
    return [f"results/models/{s}/{m}/seed{seed}/model.pt" for s, m, seed in TRAIN_RUNS]


EVAL_TABLES = [
    "cells.csv",
    "rates.csv",
    "cell_rates.csv",
    "separation.csv",
    "latent.csv",
    "eval.json",
]


def evaluate_inputs(wildcards):
    """The weights of every trained model of the job's scenario and seed, by model name
    (references need none). One evaluation job scores every method of a (scenario, seed):
    the data are read and the start-up paid once."""
    return {
        f"model_{model}": f"results/models/{wildcards.scenario}/{model}/seed{wildcards.seed}/model.pt"
        for model in MODELS
    }


def method_config(name):
    return config["models"][name] if name in MODELS else config["references"][name]


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
            "results/summary_cells.csv",
            "results/findings.csv",
            "results/figures/summary.png",
            "results/figures/separation.png",
            "results/figures/cells_inside_bg_on.png",
        ]
        + expand(
            "results/figures/cell_map_{scenario}_{model}.png",
            scenario=SCENARIOS,
            model=METHODS,
        )
        + expand(
            "results/figures/{scenario}/{model}/training_curves.png",
            scenario=SCENARIOS,
            model=MODELS,
        )
        + [
            f"results/figures/{s}/{m}/seed{FIGURE_SEED}/{figure}.png"
            for s in SCENARIOS
            for m in MODELS
            for figure in ("reconstruction", "traversal")
        ]
        + [
            f"results/figures/{s}/{m}/seed{FIGURE_SEED}/decomposition.png"
            for s in SCENARIOS
            for m in MODELS
            if config["models"][m]["type"] == "layered"
        ]
    )


def seed_histories(wildcards):
    """Input function: the training history of every seed of the job's scenario and model."""
    return [
        f"results/models/{wildcards.scenario}/{wildcards.model}/seed{seed}/history.csv"
        for seed in SEEDS
    ]


def run_tables(name):
    """One per-run evaluation table (e.g. rates.csv) of every run, in RUNS order."""
    return [f"results/eval/{s}/{m}/seed{seed}/{name}" for s, m, seed in RUNS]


def is_dual(model):
    return model in MODELS and config["models"][model]["type"] == "dual"
