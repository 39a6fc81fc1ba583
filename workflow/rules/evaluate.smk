rule evaluate:
    input:
        unpack(evaluate_inputs),
        train=split_store("train"),
        val=split_store("val"),
        split=split_store(config["evaluation"]["split"]),
    output:
        [
            f"results/eval/{{scenario}}/{method}/seed{{seed}}/{name}"
            for method in METHODS
            for name in EVAL_TABLES
        ],
    log:
        "results/logs/evaluate/{scenario}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{scenario}/seed{seed}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    params:
        methods={name: method_config(name) for name in METHODS},
        split=config["evaluation"]["split"],
        threshold=config["evaluation"]["threshold"],
        batch_size=250,
        probe_seed=0,
    script:
        "../scripts/evaluate.py"
