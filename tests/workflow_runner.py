"""Run the project's Snakefile in a scratch directory, with the test venv's tools on PATH."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str, configfile: Path | None | bool = None):
    """`snakemake ARGS` on ROOT/Snakefile in `workdir` with `configfile` (default
    workdir/config.yaml; False: no --configfile, the workflow reads workdir/config.yaml).
    --configfile goes last: it takes several values."""
    tool = shutil.which("snakemake", path=str(BIN)) or "snakemake"
    command = [tool, *args, "--directory", str(workdir), "--snakefile", str(ROOT / "Snakefile")]
    if configfile is not False:
        command += ["--configfile", str(configfile or workdir / "config.yaml")]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, capture_output=True, text=True, env=env)
