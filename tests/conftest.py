"""Shared fixtures. Tiers are markers (see pyproject.toml); `pytest -m unit` runs one tier."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlops_template.params import Params, load_params

ROOT = Path(__file__).resolve().parents[1]
IN_CI = bool(os.environ.get("CI"))


def require(condition: bool, reason: str) -> None:
    """Skip on a laptop that lacks something; in CI (env CI set) the same lack is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"'{name}' is not installed")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT / "params.yaml")
