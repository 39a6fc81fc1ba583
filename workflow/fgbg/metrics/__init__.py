"""Metrics on arrays and tables: they know nothing of files, models or Snakemake.

`rates`: per-cell detection rates by stratum (inside / outside the background disks).
`latent`: what the latent blocks encode, and the background branch's error against g(x).
"""
