rule evaluate:
    input:
        unpack(evaluate_inputs),
        train=split_store("train"),
        test=split_store("test"),
    output:
        cells="results/eval/{scenario}/{model}/seed{seed}/cells.csv",
        rates="results/eval/{scenario}/{model}/seed{seed}/rates.csv",
        cell_rates="results/eval/{scenario}/{model}/seed{seed}/cell_rates.csv",
        separation="results/eval/{scenario}/{model}/seed{seed}/separation.csv",
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
        method=lambda wc: method_config(wc.model),
        threshold=config["evaluation"]["threshold"],
        batch_size=250,
        probe_seed=0,
    script:
        "../scripts/evaluate.py"
