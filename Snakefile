from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# common.smk reads config.yaml (or the --configfile files, which replace it) and checks it.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/summary.smk"


rule all:
    default_target: True
    input:
        all_targets(),
