"""Logging set-up for the command-line entry points (never called at import time)."""

from __future__ import annotations

import logging
import os


def configure() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
