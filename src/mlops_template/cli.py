"""What every stage's `main` shares: argument parsing, params loading, clean failures."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

from mlops_template import logs
from mlops_template.params import PARAMS_FILE, Params, ParamsError, load_params
from mlops_template.storage import InputError

log = logging.getLogger("mlops_template")

# Errors that are the user's to fix: print the message, not a traceback.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (ParamsError, InputError)


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    p.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    return p


def run(
    stage: str,
    build: Callable[[argparse.ArgumentParser], None],
    body: Callable[[argparse.Namespace, Params], int | None],
    description: str | None,
    argv: Sequence[str] | None = None,
    extra_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Parse args, load params once, run `body`; turn expected errors into exit code 1."""
    logs.configure()
    p = parser(description)
    build(p)
    args = p.parse_args(argv)
    try:
        params = load_params(args.params)
        return body(args, params) or 0
    except (*EXPECTED_ERRORS, *extra_errors) as exc:
        log.error("%s failed: %s", stage, exc)
        return 1


def add_base_arguments(p: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """--base / --base-name / --no-reproduce, shared by the report and the gate."""
    p.add_argument("--base", default=default, help=help)
    p.add_argument("--base-name", help="how to call the base in the output (default: --base)")
    p.add_argument(
        "--no-reproduce",
        action="store_true",
        help="fail instead of reproducing the base in a temporary worktree when DVC lacks it",
    )
