rule generate_data:
    output:
        train=directory("results/data/{scenario}/train.zarr"),
        test=directory("results/data/{scenario}/test.zarr"),
        card="results/data/{scenario}/card.json",
    params:
        params=lambda wc: scenario_params(config, wc.scenario),
    log:
        "results/logs/generate_data/{scenario}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/generate_data.py"
