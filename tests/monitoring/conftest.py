"""A small project copy with a trained model, shared by the monitoring tests that simulate
windows and monitor them in process (each with its own logs, outcomes and reports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_template.core import io as files
from mlops_template.core.params import Params, load_params
from mlops_template.monitoring import monitor, simulate
from tests.support import ProjectCopy, fast_changes

ROWS = 3000  # the copy's sample (train 2,400 / test 600)
WINDOW_ROWS = 2000
END = "2026-11-30T12:00:00+00:00"  # the newest simulated record: fixed, so windows repeat


@pytest.fixture(scope="session")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """The pipeline reproduced on small params and committed on main."""
    base = tmp_path_factory.mktemp("monitored")
    copy = ProjectCopy.create(
        base / "repo", fast_changes(ROWS), BENTOML_HOME=str(base / "bentoml_home")
    )
    copy.commit("copy of the template")
    copy.reproduce()
    return copy


@dataclass
class Run:
    """Simulate a window and monitor it, in process, in the copy (own logs and reports)."""

    copy: ProjectCopy
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def params(self) -> Params:
        return load_params(self.copy.path / "params.yaml")

    @property
    def logs(self) -> Path:
        return self.tmp / "logs"

    @property
    def outcomes(self) -> Path:
        return self.tmp / "outcomes"

    def simulate(self, scenario: str, *extra: str, rows: int = WINDOW_ROWS) -> None:
        argv = ["--scenario", scenario, "--rows", str(rows), "--end", END,
                "--logs", str(self.logs), "--outcomes", str(self.outcomes), *extra]  # fmt: skip
        assert simulate.main(argv) == 0

    def monitor(self, *extra: str) -> tuple[int, dict[str, Any]]:
        code = monitor.main(["--logs", str(self.logs), "--outcomes", str(self.outcomes), *extra])
        summary = files.read_json(self.copy.path / self.params.monitor.reports / "summary.json")
        return code, summary


@pytest.fixture
def run(monitored: ProjectCopy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """In the copy, with the monitoring outputs of earlier tests removed (the window history
    included, so every test starts from no history)."""
    monkeypatch.chdir(monitored.path)
    params = load_params(monitored.path / "params.yaml")
    for rel in (params.monitor.reports, params.monitor.window):
        target = monitored.path / rel
        if target.is_dir():
            for path in target.iterdir():
                path.unlink()
    return Run(monitored, tmp_path, monkeypatch)
