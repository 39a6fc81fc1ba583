"""fgbg_tools: research and documentation tools that read a finished run's results folder.
They sit apart from `fgbg`, the workflow's runtime package (what the rules call):

    python -m fgbg_tools.results_pages [results/] [--write docs/results.md README.md]
    python -m fgbg_tools.study RESULTS        (a validation study's per-run verdicts)
    python -m fgbg_tools.timing [results/]    (where a run's time goes)

`fgbg_tools.runs` is the one reader of the results folder's layout.
"""
