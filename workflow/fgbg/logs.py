"""Send a rule script's logging and stderr (warnings, tracebacks) to the rule's log file.

A :class:`JobError` that ends a script is written as one line (`error: ...`) to the log and
to the job's original stderr, and the script exits with status 1; any other exception keeps
its traceback (in the log), since it is a bug rather than a bad input.
"""

import logging
import sys


class JobError(Exception):
    """A job cannot go on (a damaged input, an unusable setting); str(error) is one line
    naming the file or key and what to do."""


def _excepthook(kind, error, traceback):
    if not isinstance(error, JobError):
        sys.__excepthook__(kind, error, traceback)
        return
    for stream in dict.fromkeys((sys.stderr, sys.__stderr__)):
        stream.write(f"error: {error}\n")
        stream.flush()


def log_to_file(path: str) -> None:
    sys.stderr = open(path, "w", buffering=1)  # stays open for the script's lifetime
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    sys.excepthook = _excepthook  # an uncaught exception still exits with status 1
