"""The first screen and the docs: links resolve, the README stays short and links every
page, generated text equals what its generator writes, and the commands the README marks as
runnable are the ones CI and the tests run."""

import re
import shlex
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fgbg_tools import config_docs, results_pages

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
STUDIES = sorted((ROOT / "docs" / "studies").glob("*.md"))
PAGES = [README, *DOCS, *STUDIES, ROOT / "CHANGELOG.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
QUICK_COMMAND = "snakemake --cores 2 --configfile config/quick.yaml"


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered."""
    seen, out = {}, set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def marked_block(marker: str, text: str | None = None) -> str:
    """The first line of the ```bash block after `<!-- marker -->`, read as .ci/run reads it."""
    lines = (text or README.read_text()).splitlines()
    start = lines.index(f"<!-- {marker} -->")
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```bash"))
    return lines[fence + 1]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    text = page.read_text()
    for target in LINK.findall(re.sub(r"```.*?```", "", text, flags=re.S)):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file.read_text()), f"{page.name}: no anchor {target}"


def test_models_page_is_a_reference_and_the_study_log_names_a_commit_per_entry():
    """The models page describes what is (no study rounds); every entry of the study log
    names the commit (or release tag) at which it reruns."""
    models = (ROOT / "docs" / "models.md").read_text()
    assert len(models.encode()) <= 26 * 1024 and not re.search(r"\b[Rr]ounds? \d", models)
    log = subprocess.run(["git", "rev-list", "--all"], cwd=ROOT, capture_output=True, text=True)
    commits = {full[:7] for full in log.stdout.split()}
    for page in STUDIES:
        if page.name == "README.md":
            continue
        ran_at = re.findall(r"\*Ran at\* `([0-9a-f]{7,40})`", page.read_text())
        assert ran_at, f"{page.name}: an entry without the commit it ran at"
        if commits:  # a clone without history cannot check that the commits exist
            assert {c[:7] for c in ran_at} <= commits, page.name


def test_readme_is_short_and_links_every_docs_page():
    assert README.stat().st_size <= 12 * 1024
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(README.read_text())}
    for page in DOCS:
        assert page.resolve() in linked, f"README does not link {page.name}"


def test_the_first_screen_holds_the_commands_the_figure_and_the_sizing():
    text = README.read_text()
    first = text[: text.index("<!-- generated: pass_counts")]  # before the first table
    assert len(first.splitlines()) <= 80
    assert first.index("<!-- pipeline-command -->") < first.index("<!-- test-command -->")
    assert "docs/results/separation.png" in first
    # the default run's time, as measured (docs/performance.md): keep it honest
    assert re.search(r"takes about \d+ min on 2 cores\s+\(measured: \d+ min \d+ s", first)
    assert "download.pytorch.org/whl/cpu" in first and "6 GB" in first
    assert "snakemake -n" in first and "results/logs/train/{scenario}/{model}/seed{k}.log" in first


def test_the_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci/run").read_text()
    assert "<!-- test-command -->" in ci and "README.md" in ci
    command = marked_block("test-command")
    assert command.endswith("pip install -e '.[test]' && pytest")
    awk = re.search(r"test_command=\$\((awk .*README\.md)\)", ci).group(1)
    out = subprocess.run(awk, shell=True, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == command


def test_the_pipeline_command_installs_and_runs_the_default_target():
    command = marked_block("pipeline-command")
    assert command == (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && snakemake --cores 8"
    )


def test_the_quick_command_is_the_one_the_quick_run_test_plans():
    assert marked_block("quick-command") == QUICK_COMMAND


def test_the_quick_run_plans_every_output_of_one_scenario_two_models_one_seed(tmp_path):
    """`snakemake -n` of the README's quick command (in a scratch directory) plans data,
    two trainings, the references' and models' evaluations and every figure."""
    config = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    assert list(config["scenarios"]) == ["x90"] and config["seeds"] == [0]
    assert list(config["models"]) == ["dual", "layered"]
    tool = str(Path(sys.executable).parent / "snakemake")
    args = shlex.split(QUICK_COMMAND)[1:]
    extra = ["-n", "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile")]
    out = subprocess.run(
        [tool, *extra, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout, re.M))
    assert int(counts["train"]) == 2 and int(counts["generate_data"]) == 1
    for rule in ("evaluate", "summary", "findings", "summary_figure", "separation_figure"):
        assert rule in counts, rule
    for path in (
        "results/models/x90/layered/seed0/model.pt",
        *(f"results/eval/x90/{m}/seed0/rates.csv" for m in (*config["models"], "opening")),
        "results/summary.csv",
        "results/findings.csv",
        "results/figures/x90/layered/seed0/decomposition.png",
        "results/figures/cells_inside_bg_on.png",
    ):
        assert path in out.stdout, path


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp is not recognized")
def test_the_quick_run_writes_every_table_and_figure(tmp_path):
    """The README's quick command, run in a scratch directory (about 1-2 minutes on 2 cores)."""
    tool = str(Path(sys.executable).parent / "snakemake")
    extra = ["--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile")]
    command = [tool, *shlex.split(marked_block("quick-command"))[1:], *extra]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    results = tmp_path / "results"
    for table in ("summary.csv", "summary_wide.csv", "summary_cells.csv", "findings.csv"):
        assert len(pd.read_csv(results / table)) > 0, table
    figures = {p.relative_to(results / "figures").as_posix() for p in results.rglob("*.png")}
    assert {"summary.png", "separation.png", "cells_inside_bg_on.png"} <= figures
    assert "x90/layered/seed0/decomposition.png" in figures
    assert "x90/dual/training_curves.png" in figures
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary["model"]) >= {"dual", "layered", "raw", "neuropil", "truth", "opening"}


def test_the_configuration_key_table_is_generated_from_the_schema():
    page = (ROOT / "docs/configuration.md").read_text()
    assert config_docs.render(page) == page, "run: python -m fgbg_tools.config_docs"
    schema_keys = {row[0] for row in config_docs.rows(config_docs.load_schema())}
    assert "`models.NAME.type`" in schema_keys and "`references.NAME.type`" in schema_keys


def _tables(text: str) -> dict[str, pd.DataFrame]:
    """Each generated block of a page, parsed back into a frame, by its marker."""
    out = {}
    for match in results_pages.BLOCK.finditer(text):
        rows = [line.strip("|").split(" | ") for line in match.group(4).strip().splitlines()]
        rows = [[cell.strip() for cell in row] for row in rows]
        frame = pd.read_csv(StringIO(""), names=rows[0]) if len(rows) < 3 else None
        frame = pd.DataFrame(rows[2:], columns=rows[0]) if frame is None else frame
        out[(match.group(2) + match.group(3)).strip()] = frame
    return out


def test_generated_blocks_are_what_the_generator_writes():
    """Filling a page with the tables parsed from docs/results.md changes nothing: the README's
    small table is the results page's headline table cut by its marker, and no block was
    edited by hand into a shape the generator cannot write."""
    results = (ROOT / "docs/results.md").read_text()
    parsed = _tables(results)
    generated = {name.split()[0]: table for name, table in parsed.items() if " " not in name}
    assert {"headline", "comparisons", "targets", "convergence"} <= set(generated)
    assert results_pages.fill(results, generated) == results
    readme = README.read_text()
    assert results_pages.fill(readme, generated) == readme


def test_fill_replaces_only_the_blocks_it_has(tmp_path):
    page = (
        "text\n<!-- generated: headline models=a rows=s/m -->\nold\n<!-- end generated -->\n"
        "<!-- generated: other -->\nkeep\n<!-- end generated -->\n"
    )
    table = pd.DataFrame(
        {"model": ["a", "a", "b"], "stratum": ["s", "t", "s"], "metric": ["m"] * 3, "x": [1, 2, 3]}
    )
    out = results_pages.fill(page, {"headline": table})
    assert "| a | s | m | 1 |" in out and "| a | t |" not in out and "| b |" not in out
    assert "keep" in out and "old" not in out


def test_release_files_agree_on_the_version():
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    required = {"cff-version", "message", "title", "authors", "version", "date-released"}
    assert required <= set(cff) and cff["cff-version"] == "1.2.0"
    assert cff["version"] == version and cff["license"] == "MIT"
    thesis = cff["references"][0]
    assert thesis["type"] == "thesis" and thesis["year"] == 2020
    assert thesis["authors"][0]["family-names"] == "Eichin"
    assert "University of Freiburg" in thesis["institution"]["name"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{version}]" in changelog
    out = subprocess.run(
        [sys.executable, "-m", "fgbg", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"fgbg {version}"
