"""What the benchmark scripts share: the machine they ran on, its load, and records to send.

Imported as `common` (each script runs as `python benchmarks/<name>.py`, so this folder is
first on `sys.path`)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def machine(packages: Sequence[str]) -> dict[str, Any]:
    """CPUs, Python, platform and the installed versions of `packages` (None: absent)."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": versions,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def held_out_records(n: int) -> list[dict[str, Any]]:
    """`n` records of the held-out test set's input columns, as JSON would carry them
    (repeated when the test set has fewer rows)."""
    from mlops_template.core import io as files
    from mlops_template.core.params import load_params
    from mlops_template.core.schema import TABLE

    test = files.read_table(ROOT / load_params(ROOT / "params.yaml").paths.test)
    frame = test.loc[:, [c.name for c in TABLE.input_columns]]
    frame = pd.concat([frame] * (n // len(frame) + 1)).head(n)
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records
