"""What every command's `main` shares: argument parsing, params loading, clean failures."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence

from mlops_template.core import stopping
from mlops_template.core.errors import ProjectError
from mlops_template.core.params import Params, load_params
from mlops_template.core.repo import PARAMS_FILE

log = logging.getLogger("mlops_template")
DVC_STAGE_ENV = "DVC_STAGE"  # DVC sets it for every stage command it runs


def configure_logging() -> None:
    """One line per message, with the time; LOG_LEVEL=DEBUG for more. Never at import time."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    p.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    return p


def run(
    command: str,
    build: Callable[[argparse.ArgumentParser], None],
    body: Callable[[argparse.Namespace, Params], int | None],
    description: str | None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse args, load params once, run `body`; a `ProjectError` becomes exit code 1 and
    its message, never a traceback; a stop (signal, or the end of the DVC run that started a
    stage) becomes 128 + the signal's number, with nothing written after it."""
    configure_logging()
    p = parser(description)
    build(p)
    args = p.parse_args(argv)
    try:
        stopping.install(watch_parents=DVC_STAGE_ENV in os.environ)
        params = load_params(args.params)
        return body(args, params) or 0
    except ProjectError as exc:
        log.error("%s failed: %s", command, exc)
        return 1
    except stopping.Stopped as stop:
        log.error("%s stopped (%s) before it finished; it wrote nothing after the stop", command,
                  stop)  # fmt: skip
        return 128 + stop.signum
