"""Shared fixtures. Tiers are markers (see pyproject.toml); `pytest -m unit` runs one tier.
Helpers live in `tests/support.py`."""

from __future__ import annotations

import pytest

from mlops_template.core.params import Params, load_params
from tests.support import ROOT, ProjectCopy, fast_changes

SMALL_ROWS = 3000  # rows of the built-in sample for the copies below


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """A copy with the pipeline reproduced on small params and committed on main. Shared by
    the service and container tiers: treat it as read-only (build into their own dirs)."""
    base = tmp_path_factory.mktemp("small")
    copy = ProjectCopy.create(
        base / "repo", fast_changes(SMALL_ROWS), BENTOML_HOME=str(base / "bentoml_home")
    )
    copy.commit("copy of the template")
    copy.reproduce()
    return copy
