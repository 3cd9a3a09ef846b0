"""The command-line arguments the report and the gate share."""

from __future__ import annotations

import argparse


def add_base_arguments(p: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """--base / --base-name / --no-reproduce."""
    p.add_argument("--base", default=default, help=help)
    p.add_argument("--base-name", help="how to call the base in the output (default: --base)")
    p.add_argument(
        "--no-reproduce",
        action="store_true",
        help="fail instead of reproducing the base in a temporary worktree when DVC lacks it",
    )
