localrules:
    training_curves,
    summary_figure,
    separation_figure,
    cells_figure,
    cell_map,


rule run_figures:
    input:
        model="results/models/{scenario}/{model}/seed{seed}/model.pt",
        test=split_store("test"),
    output:
        reconstruction=report(
            "results/figures/{scenario}/{model}/seed{seed}/reconstruction.png",
            caption="../report/reconstruction.rst",
            category="Runs",
            subcategory="{scenario}",
            labels={"model": "{model}", "seed": "{seed}", "figure": "reconstruction"},
        ),
        traversal=report(
            "results/figures/{scenario}/{model}/seed{seed}/traversal.png",
            caption="../report/traversal.rst",
            category="Runs",
            subcategory="{scenario}",
            labels={
                "model": "{model}",
                "seed": "{seed}",
                "figure": "latent traversal",
            },
        ),
    log:
        "results/logs/run_figures/{scenario}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/run_figures/{scenario}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    params:
        n_images=8,
        amplitude=5.0,
        max_dims=16,
    script:
        "../scripts/plot_run.py"


rule decomposition_figure:
    input:
        model="results/models/{scenario}/{model}/seed{seed}/model.pt",
        test=split_store("test"),
    output:
        figure=report(
            "results/figures/{scenario}/{model}/seed{seed}/decomposition.png",
            caption="../report/decomposition.rst",
            category="Runs",
            subcategory="{scenario}",
            labels={"model": "{model}", "seed": "{seed}", "figure": "decomposition"},
        ),
    log:
        "results/logs/decomposition_figure/{scenario}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/decomposition_figure/{scenario}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    params:
        n_images=8,
    script:
        "../scripts/plot_decomposition.py"


rule training_curves:
    input:
        histories=seed_histories,
    output:
        figure=report(
            "results/figures/{scenario}/{model}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Runs",
            subcategory="{scenario}",
            labels={"model": "{model}", "figure": "training curves"},
        ),
    log:
        "results/logs/training_curves/{scenario}/{model}.log",
    benchmark:
        "results/benchmarks/training_curves/{scenario}/{model}.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        seeds=SEEDS,
    script:
        "../scripts/plot_training.py"


rule summary_figure:
    input:
        table="results/summary.csv",
        rates=run_tables("rates.csv"),
    output:
        figure=report(
            "results/figures/summary.png",
            caption="../report/summary_figure.rst",
            category="Results",
            labels={"result": "summary figure"},
        ),
    log:
        "results/logs/summary_figure.log",
    benchmark:
        "results/benchmarks/summary_figure.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        figure="summary_figure",
        runs=RUNS,
        references=REFERENCES,
    script:
        "../scripts/plot_summary.py"


rule separation_figure:
    input:
        table="results/summary.csv",
        rates=run_tables("rates.csv"),
        separation=run_tables("separation.csv"),
    output:
        figure=report(
            "results/figures/separation.png",
            caption="../report/separation_figure.rst",
            category="Results",
            labels={"result": "separation figure"},
        ),
    log:
        "results/logs/separation_figure.log",
    benchmark:
        "results/benchmarks/separation_figure.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        figure="separation_figure",
        runs=RUNS,
        references=REFERENCES,
    script:
        "../scripts/plot_summary.py"


rule cells_figure:
    input:
        table="results/summary_cells.csv",
        cell_rates=run_tables("cell_rates.csv"),
    output:
        figure=report(
            "results/figures/cells_inside_bg_on.png",
            caption="../report/cells_figure.rst",
            category="Results",
            labels={"result": "per-cell rates under active disks"},
        ),
    log:
        "results/logs/cells_figure.log",
    benchmark:
        "results/benchmarks/cells_figure.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        figure="cells_figure",
        runs=RUNS,
        references=REFERENCES,
    script:
        "../scripts/plot_summary.py"


rule cell_map:
    input:
        cells=lambda wc: [
            f"results/eval/{wc.scenario}/{method}/seed{seed}/cells.csv"
            for method in METHODS
            for seed in SEEDS
        ],
        test=lambda wc: first_replicate_store(wc.scenario, "test"),
    output:
        [
            report(
                f"results/figures/cell_map_{{scenario}}_{method}.png",
                caption="../report/cell_map.rst",
                category="Per-cell maps",
                labels={"scenario": "{scenario}", "model": method},
            )
            for method in METHODS
        ],
    log:
        "results/logs/cell_map/{scenario}.log",
    benchmark:
        "results/benchmarks/cell_map/{scenario}.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        methods=METHODS,
        seeds=SEEDS,
        dual=[method for method in METHODS if is_dual(method)],
        threshold=config["evaluation"]["threshold"],
        split=config["evaluation"]["split"],
        disks=lambda wc: scenario_params(config, wc.scenario)["disks"],
    script:
        "../scripts/plot_cell_map.py"
