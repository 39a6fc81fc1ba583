localrules:
    summary,
    findings,


rule summary:
    input:
        rates=run_tables("rates.csv"),
        separation=run_tables("separation.csv"),
        cell_rates=run_tables("cell_rates.csv"),
        latent=run_tables("latent.csv"),
    output:
        summary=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Results",
            labels={"result": "summary (tidy)"},
        ),
        wide=report(
            "results/summary_wide.csv",
            caption="../report/summary_wide.rst",
            category="Results",
            labels={"result": "summary (scenarios side by side)"},
        ),
        cells=report(
            "results/summary_cells.csv",
            caption="../report/summary_cells.rst",
            category="Results",
            labels={"result": "per-cell rates"},
        ),
        latent=report(
            "results/summary_latent.csv",
            caption="../report/summary_latent.rst",
            category="Results",
            labels={"result": "latent probes and background error"},
        ),
    log:
        "results/logs/summary.log",
    benchmark:
        "results/benchmarks/summary.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        runs=RUNS,
        scenarios=SCENARIOS,
        models=METHODS,
    script:
        "../scripts/summarise.py"


rule findings:
    input:
        rates=run_tables("rates.csv"),
        latent=run_tables("latent.csv"),
    output:
        findings=report(
            "results/findings.csv",
            caption="../report/findings.rst",
            category="Results",
            labels={"result": "thesis findings"},
        ),
    log:
        "results/logs/findings.log",
    benchmark:
        "results/benchmarks/findings.tsv"
    conda:
        "../../envs/plotting.yaml"
    params:
        runs=RUNS,
        methods=METHODS,
        dual=[m for m in MODELS if is_dual(m)],
        scenarios=config["scenarios"],
    script:
        "../scripts/findings.py"
