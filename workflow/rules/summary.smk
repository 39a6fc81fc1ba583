localrules:
    summary,
    findings,


rule summary:
    input:
        rates=run_tables("rates.csv"),
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
        latent=report(
            "results/summary_latent.csv",
            caption="../report/summary_latent.rst",
            category="Results",
            labels={"result": "latent probes and background error"},
        ),
    log:
        "results/logs/summary.log",
    conda:
        "../../envs/plotting.yaml"
    params:
        runs=RUNS,
        scenarios=SCENARIOS,
        models=MODELS,
    script:
        "../scripts/summarise.py"


rule findings:
    input:
        summary="results/summary.csv",
        latent="results/summary_latent.csv",
    output:
        findings=report(
            "results/findings.csv",
            caption="../report/findings.rst",
            category="Results",
            labels={"result": "thesis findings"},
        ),
    log:
        "results/logs/findings.log",
    conda:
        "../../envs/plotting.yaml"
    params:
        model=dual_model(),
        scenarios=config["scenarios"],
    script:
        "../scripts/findings.py"
