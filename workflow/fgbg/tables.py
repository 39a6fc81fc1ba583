"""Writing outputs atomically (a temporary file beside the target, then a rename), and the
package versions every output records."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from importlib.metadata import version
from pathlib import Path

import pandas as pd


def atomic_write(path, write) -> None:
    """Call `write(tmp)` for a temporary path beside `path`, then rename it into place:
    readers never see a half-written file, and a failure leaves no file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_csv(frame: pd.DataFrame, path) -> None:
    """Write `frame` without its index."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_text(text: str, path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(data: dict, path) -> None:
    write_text(json.dumps(data, indent=2) + "\n", path)


def versions(*packages: str) -> dict:
    """Python's version, fgbg's own (pyproject.toml's, as `python -m fgbg --version` prints
    it) and each installed distribution's (e.g. "torch", "scikit-learn")."""
    return {
        "python": platform.python_version(),
        "fgbg": version("fgbg"),
        **{p: version(p) for p in packages},
    }
