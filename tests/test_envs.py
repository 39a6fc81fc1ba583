"""The conda environments in envs/ pin versions that pyproject.toml's requirements admit."""

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}


def conda_pins(path: Path) -> dict[str, str]:
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        assert isinstance(dep, str), f"{path.name}: unexpected pip section {dep!r}"
        name, _, version = dep.partition("=")
        assert version, f"{path.name}: {name} is not pinned"
        pins[CONDA_TO_PYPI.get(name, name)] = version
    return pins


def test_every_step_kind_has_an_env():
    assert {p.stem for p in ENV_FILES} == {"data", "training", "plotting"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_satisfy_pyproject(path):
    requirements = pyproject_requirements()
    for name, version in conda_pins(path).items():
        if name == "python":
            continue
        assert name in requirements, f"{path.name}: {name} is not a dependency in pyproject.toml"
        assert requirements[name].specifier.contains(version), (
            f"{path.name}: {name}={version} violates pyproject's {requirements[name]}"
        )


def test_every_rule_uses_an_existing_env_file():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        lines = [line.strip() for line in smk.read_text().splitlines()]
        rules = [line for line in lines if line.startswith("rule ")]
        envs = [lines[i + 1].strip('",') for i, line in enumerate(lines) if line == "conda:"]
        assert len(envs) == len(rules), f"{smk.name}: {len(rules)} rules but {len(envs)} conda:"
        for env in envs:
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env} does not exist"


def main_install_closure() -> set[str]:
    """Names of every distribution that `pip install .` brings: pyproject's dependencies and,
    recursively, theirs (with the extras asked for), read from the installed metadata."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    done: set[tuple[str, frozenset]] = set()
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in done:
            continue
        done.add(key)
        for text in metadata.requires(requirement.name) or []:
            dep = Requirement(text)
            extras = {"", *requirement.extras}
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                todo.append(dep)
    return {name for name, _ in done}


def test_report_needs_come_with_the_main_install():
    """`snakemake --report` needs what snakemake's `reports` extra names (pygments; the test
    install brings it through pytest, so building a report in the tests proves nothing)."""
    report_extra = {
        canonicalize_name(r.name)
        for r in map(Requirement, metadata.requires("snakemake"))
        if r.marker and r.marker.evaluate({"extra": "reports"}) and not r.marker.evaluate()
    }
    assert "pygments" in report_extra
    missing = (report_extra | {"jinja2", "docutils"}) - main_install_closure()
    assert not missing, f"snakemake --report needs {sorted(missing)}: not in pyproject's closure"
