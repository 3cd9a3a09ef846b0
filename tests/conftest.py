"""Shared fixtures. Tiers are markers (see pyproject.toml); `pytest -m unit` runs one tier."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_template.params import Params, load_params, parse_params

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


def raw_params() -> dict[str, Any]:
    """A fresh, mutable copy of params.yaml as plain YAML data (to build variants from)."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return raw


def set_dotted(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply {"data.sample.n_rows": 3000, ...} to nested YAML data in place; return it."""
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[key] = value
    return raw


def params_with(changes: dict[str, Any]) -> Params:
    """params.yaml with some keys changed, validated like the real file."""
    return parse_params(set_dotted(raw_params(), changes), origin="params.yaml (test variant)")
