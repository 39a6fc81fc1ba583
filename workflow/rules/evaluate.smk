rule evaluate:
    input:
        model="results/models/{scenario}/{model}/seed{seed}/model.pt",
        test="results/data/{scenario}/test.zarr",
    output:
        cells="results/eval/{scenario}/{model}/seed{seed}/cells.csv",
        rates="results/eval/{scenario}/{model}/seed{seed}/rates.csv",
        latent="results/eval/{scenario}/{model}/seed{seed}/latent.csv",
        info="results/eval/{scenario}/{model}/seed{seed}/eval.json",
    log:
        "results/logs/evaluate/{scenario}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{scenario}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    params:
        threshold=config["evaluation"]["threshold"],
        batch_size=250,
        probe_seed=0,
    script:
        "../scripts/evaluate.py"
