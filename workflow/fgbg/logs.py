"""Send a rule script's logging and stderr (warnings, tracebacks) to the rule's log file."""

import logging
import sys


def log_to_file(path: str) -> None:
    sys.stderr = open(path, "w", buffering=1)  # stays open for the script's lifetime
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
