"""Quality gates that CI enforces: lint, formatting and a dry run of the default DAG."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runner import snakemake

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    tool = shutil.which(args[0], path=str(BIN)) or args[0]
    return subprocess.run([tool, *args[1:]], cwd=cwd, capture_output=True, text=True)


def test_snakemake_lint_is_clean():
    result = run("snakemake", "--lint")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output, output


def test_snakefmt_check():
    result = run("snakefmt", "--check", "Snakefile", "workflow")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_check():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_of_default_dag(tmp_path):
    """The whole default DAG resolves (in a fresh directory, so nothing is up to date)."""
    result = snakemake(tmp_path, "-n", configfile=ROOT / "config.yaml")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "generate_data" in output
    for scenario in ("x90", "x50", "x90_20"):
        assert f"scenario={scenario}" in output, output[-2000:]


@pytest.mark.parametrize("module", ["fgbg.config", "fgbg.layout"])
def test_parse_time_modules_do_not_import_torch(module):
    """The Snakefile imports these on login nodes and in every cluster job."""
    code = f"import sys; import {module}; assert 'torch' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "workflow", capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
