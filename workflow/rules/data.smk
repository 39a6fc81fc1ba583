localrules:
    data_samples_figure,
    data_layout_figure,


rule generate_data:
    output:
        train=directory("results/data/{scenario}/{replicate}/train.zarr"),
        val=directory("results/data/{scenario}/{replicate}/val.zarr"),
        test=directory("results/data/{scenario}/{replicate}/test.zarr"),
        card="results/data/{scenario}/{replicate}/card.json",
    log:
        "results/logs/generate_data/{scenario}/{replicate}.log",
    benchmark:
        "results/benchmarks/generate_data/{scenario}/{replicate}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        generation=lambda wc: scenario_params(config, wc.scenario),
        seed=replicate_entropy,
        sizes={
            "train": config["data"]["n_train"],
            "val": config["data"]["n_val"],
            "test": config["data"]["n_test"],
        },
        chunk_size=config["data"]["chunk_size"],
    script:
        "../scripts/generate_data.py"


rule data_samples_figure:
    input:
        store=lambda wc: first_replicate_store(wc.scenario),
    output:
        figure=report(
            "results/figures/data/samples_{scenario}.png",
            caption="../report/data_samples.rst",
            category="Data",
            labels={"figure": "sample images", "scenario": "{scenario}"},
        ),
    log:
        "results/logs/data_samples_figure/{scenario}.log",
    benchmark:
        "results/benchmarks/data_samples_figure/{scenario}.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        n=8,
    script:
        "../scripts/plot_data_samples.py"


rule data_layout_figure:
    input:
        stores=[first_replicate_store(s) for s in SCENARIOS],
    output:
        figure=report(
            "results/figures/data/layout.png",
            caption="../report/data_layout.rst",
            category="Data",
            labels={"figure": "layout", "scenario": "all"},
        ),
    log:
        "results/logs/data_layout_figure.log",
    benchmark:
        "results/benchmarks/data_layout_figure.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        scenarios=SCENARIOS,
    script:
        "../scripts/plot_data_layout.py"
