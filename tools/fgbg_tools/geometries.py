"""The geometry suite: every config in config/geometries/ run as it is, and one table of how
each method fares against the ceiling of each geometry.

    python -m fgbg_tools.geometries run [--cores 2] [--split test] [--only NAME,...]
    python -m fgbg_tools.geometries table [--write docs/results.md]
    python -m fgbg_tools.geometries run-table --results DIR --name NAME [--methods ...]

`run` runs the workflow once per geometry, into results_geometries/NAME/ (Snakemake's own
bookkeeping: a rerun does only what is missing or out of date); `--split val` measures the
validation split instead, for choosing settings. `table` reads each geometry's per-run
tables (results_geometries/NAME/results/eval/) and gives, per geometry and scenario, the
ceiling's `inside_bg_on` AUROC; the runs of each of METHODS that meet every target
(fgbg.targets, relative to the ceiling of the same run); the layered model's worst run (the
target it misses by the most, with its value and bound) and the range over its runs of the
nats per cell its scores lose against the ceiling's (`log_loss_excess`, `inside_bg_on`);
then the geometry's cost: its jobs' wall minutes summed (Snakemake's benchmarks, every
rule) and a layered training's mean wall seconds (run.json; `cost`). With --write it
replaces the page's `<!-- generated: geometries -->` block. `run-table` gives the same
rows for one run of any config (DIR/results, e.g. the intensity config's) and the chosen
methods, into the block `<!-- generated: NAME -->`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from fgbg.targets import ALL, CEILING, FAIL, PASS, excess_over_ceiling, run_verdicts
from fgbg_tools import timing
from fgbg_tools.results_pages import fill, per_run
from fgbg_tools.runs import markdown_table, runs

ROOT = Path(__file__).resolve().parents[2]
GEOMETRIES = ROOT / "config" / "geometries"
OUT = Path("results_geometries")
METHODS = ("layered", "opening", "nmf", CEILING)
MODEL = "layered"


def geometries(only=None) -> list[Path]:
    """The suite's configs, by name; `only`: a subset of names (an unknown one is an error)."""
    configs = {path.stem: path for path in sorted(GEOMETRIES.glob("*.yaml"))}
    unknown = sorted(set(only or ()) - set(configs))
    if unknown:
        raise SystemExit(f"--only: no geometry {', '.join(unknown)} in {GEOMETRIES}")
    return [path for name, path in configs.items() if not only or name in only]


def run(cores: int, split: str, out: Path, only=None, extra=()) -> None:
    """Run the workflow on each geometry into out/NAME; stop at the first that fails."""
    for config in geometries(only):
        command = [
            sys.executable, "-m", "snakemake", "--cores", str(cores),
            "--snakefile", str(ROOT / "Snakefile"), "--directory", str(out / config.stem),
            "--configfile", str(config), *extra,
        ]  # fmt: skip
        if split != "test":  # the config's own evaluation block, on another split
            evaluation = yaml.safe_load(config.read_text()).get("evaluation", {})
            flow = yaml.safe_dump({**evaluation, "split": split}, default_flow_style=True)
            command += ["--config", f"evaluation={flow.strip()}"]
        print(f"geometry {config.stem}: {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode:
            raise SystemExit(f"geometry {config.stem} failed; its log is under {out / config.stem}")


def worst_miss(verdicts: pd.DataFrame) -> str:
    """The failed target furthest past its bound (in units of the bound's own metric), as
    'seed S: METRIC STRATUM VALUE (bound BOUND)'; '' when no target failed."""
    failed = verdicts[(verdicts["verdict"] == FAIL) & (verdicts["target"] != ALL)]
    if failed.empty:
        return ""
    row = failed.loc[(failed["value"] - failed["bound"]).abs().idxmax()]
    return (
        f"seed {row['seed']}: {row['metric']} `{row['stratum']}` {row['value']:.3f} "
        f"(bound {row['bound']:.3f})"
    )


def cost(results: Path) -> dict:
    """The run's job minutes (every job's wall time, summed) and each trained model's
    seconds per training (the training function's own wall time, every start and the
    readout, from run.json; MODEL's first). Wall time, not Snakemake's `cpu_time`: that is
    sampled every 30 s, so a job of a minute or two reads the last sample before it ended
    (a 75 s job read 43 s). Jobs run on one thread each, so on cores that are not shared
    the wall time is the CPU time."""
    training = timing.training_times(results).set_index("model")["train_wall_s"]
    models = sorted(training.index, key=lambda model: model != MODEL)
    return {
        "job min (all jobs)": round(timing.rule_times(results)["wall_s"].sum() / 60, 1),
        **{f"{model} s per training": round(training[model], 1) for model in models},
    }


def table(out: Path) -> pd.DataFrame:
    """One row per (geometry, scenario): see the module docstring."""
    rows = []
    for config in geometries():
        results = out / config.stem / "results"
        if runs(results, "eval", "rates.csv"):  # run and evaluated
            rows += run_rows(results, {"geometry": config.stem}, METHODS)
    return pd.DataFrame(rows)


def run_rows(results: Path, label: dict, methods) -> list[dict]:
    """One run's rows (one per scenario, each starting with `label`): the ceiling's AUROC,
    the runs of each of `methods` that meet every target, MODEL's worst miss and its
    log-loss excess, then the run's cost."""
    long = per_run(results)
    verdicts = run_verdicts(long[long["model"].isin(methods)])
    excess = excess_over_ceiling(long, "log_loss")
    excess = excess[excess["stratum"] == "inside_bg_on"]
    spent = cost(results)  # the run's, on each of its scenarios' rows
    rows = []
    for scenario in dict.fromkeys(verdicts["scenario"]):
        mine = verdicts[verdicts["scenario"] == scenario]
        ceiling = long[
            (long["scenario"] == scenario)
            & (long["model"] == CEILING)
            & (long["stratum"] == "inside_bg_on")
            & (long["metric"] == "auroc")
        ]["value"]
        auroc = f"{ceiling.min():.3f}-{ceiling.max():.3f}"
        row = {**label, "scenario": scenario, "ceiling auroc inside_bg_on": auroc}
        for method in methods:
            overall = mine[(mine["model"] == method) & (mine["target"] == ALL)]
            passed = int((overall["verdict"] == PASS).sum())
            row[method] = f"{passed} of {len(overall)}" if len(overall) else ""
        row[f"{MODEL}: worst miss"] = worst_miss(mine[mine["model"] == MODEL])
        gap = excess[(excess["scenario"] == scenario) & (excess["model"] == MODEL)]["value"]
        row[f"{MODEL}: log loss excess"] = f"{gap.min():.3f}-{gap.max():.3f}" if len(gap) else ""
        rows.append(row | spent)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "table", "run-table"])
    parser.add_argument("--results", type=Path, help="run-table: a run's directory")
    parser.add_argument("--name", help="run-table: the page's generated block to fill")
    parser.add_argument("--methods", default=",".join(METHODS), help="run-table: methods")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--only", help="comma-separated geometry names (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--write", type=Path, nargs="*", default=[])
    args, extra = parser.parse_known_args(argv)
    if args.action == "run":
        run(args.cores, args.split, args.out, args.only and args.only.split(","), extra)
        return
    if args.action == "run-table":
        if not (args.results and args.name):
            parser.error("run-table needs --results and --name")
        if not (args.results / "results" / "eval").is_dir():
            parser.error(f"--results {args.results}: no results/eval/ there (a run's directory)")
        frame = pd.DataFrame(run_rows(args.results / "results", {}, args.methods.split(",")))
    else:
        frame = table(args.out)
    for page in args.write:
        page.write_text(fill(page.read_text(), {args.name or "geometries": frame}))
    if not args.write:
        print(markdown_table(frame))


if __name__ == "__main__":
    main()
