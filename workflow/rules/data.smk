localrules:
    data_samples_figure,
    data_layout_figure,


rule generate_data:
    output:
        train=directory("results/data/{scenario}/train.zarr"),
        test=directory("results/data/{scenario}/test.zarr"),
        card="results/data/{scenario}/card.json",
    log:
        "results/logs/generate_data/{scenario}.log",
    benchmark:
        "results/benchmarks/generate_data/{scenario}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        generation=lambda wc: scenario_params(config, wc.scenario),
        seed=config["data"]["seed"],
        n_train=config["data"]["n_train"],
        n_test=config["data"]["n_test"],
        chunk_size=config["data"]["chunk_size"],
    script:
        "../scripts/generate_data.py"


rule data_samples_figure:
    input:
        store="results/data/{scenario}/train.zarr",
    output:
        figure=report(
            "results/figures/data/samples_{scenario}.png",
            caption="../report/data_samples.rst",
            category="Data",
            labels={"figure": "sample images", "scenario": "{scenario}"},
        ),
    log:
        "results/logs/data_samples_figure/{scenario}.log",
    conda:
        "../../envs/plotting.yaml"
    params:
        n=8,
    script:
        "../scripts/plot_data_samples.py"


rule data_layout_figure:
    input:
        stores=expand("results/data/{scenario}/train.zarr", scenario=SCENARIOS),
    output:
        figure=report(
            "results/figures/data/layout.png",
            caption="../report/data_layout.rst",
            category="Data",
            labels={"figure": "layout", "scenario": "all"},
        ),
    log:
        "results/logs/data_layout_figure.log",
    conda:
        "../../envs/plotting.yaml"
    params:
        scenarios=SCENARIOS,
    script:
        "../scripts/plot_data_layout.py"
