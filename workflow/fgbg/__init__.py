"""fgbg: separating foreground from background signal with dual VAEs.

Importing the package (or fgbg.config) never imports torch: the Snakefile imports it at
parse time on login nodes.
"""
