"""`python -m fgbg --version`: the installed fgbg's version (pyproject.toml's), the one every
run.json records."""

import argparse
from importlib.metadata import version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fgbg",
        description="fgbg: separating foreground from background signal with VAEs. "
        "The workflow runs with snakemake (see README.md).",
    )
    parser.add_argument("--version", action="version", version=f"fgbg {version('fgbg')}")
    parser.parse_args(argv)
    parser.print_help()


if __name__ == "__main__":
    main()
