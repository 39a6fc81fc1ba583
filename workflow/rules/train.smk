rule train:
    input:
        train=split_store("train"),
        val=split_store("val"),
    output:
        model="results/models/{scenario}/{model}/seed{seed}/model.pt",
        history="results/models/{scenario}/{model}/seed{seed}/history.csv",
        run="results/models/{scenario}/{model}/seed{seed}/run.json",
    log:
        "results/logs/train/{scenario}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{scenario}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        gpu=train_gpus,
    params:
        model=lambda wc: model_training(config, wc.model)[0],
        training=lambda wc: model_training(config, wc.model)[1],
        seed=lambda wc: training_seed(config, wc.model, int(wc.seed)),
    script:
        "../scripts/train.py"
