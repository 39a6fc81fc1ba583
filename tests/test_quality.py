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


def _imports(package_dir: Path) -> dict[str, set[str]]:
    """module -> the modules of fgbg and fgbg_tools it imports (anywhere in its body)."""
    import ast

    graph = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found |= {n for n in names if n.split(".")[0] in ("fgbg", "fgbg_tools")}
        graph[module] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle among the graph's modules (depth-first search), or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for nxt in sorted(graph[module] & graph.keys() - {module}):
            if state.get(nxt) == "open":
                return [*path, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_the_packages_have_no_import_cycle_and_the_runtime_needs_no_tools():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    graph = _imports(ROOT / "workflow" / "fgbg") | _imports(ROOT / "tools" / "fgbg_tools")
    assert {"fgbg.training", "fgbg_tools.timing", "fgbg_tools.results_pages"} <= graph.keys()
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    runtime_to_tools = [m for m, targets in graph.items() if m.startswith("fgbg.")
                        and any(t.startswith("fgbg_tools") for t in targets)]  # fmt: skip
    assert not runtime_to_tools
