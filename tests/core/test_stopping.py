"""Which parent processes a pipeline stage watches (core/stopping.py `owners`): all of them
under `dvc repro` / `dvc exp run`, but none above a DVC queue worker, which DVC keeps running
when the command that started the queue goes away. (The real stops are in
tests/pipeline/test_pipeline.py and tests/review/test_experiments.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from mlops_template.core import stopping

pytestmark = pytest.mark.unit

PY = "/repo/.venv/bin/python"
DVC = "/repo/.venv/bin/dvc"


@dataclass
class Fake:
    args: list[str]

    def cmdline(self) -> list[str]:
        return self.args


class Gone:
    def cmdline(self) -> list[str]:
        raise psutil.NoSuchProcess(123)


def _owners(*chain: Any) -> list[Any]:
    return stopping.owners(list(chain))


def test_under_dvc_repro_every_parent_is_watched() -> None:
    chain = [Fake([PY, DVC, "repro"]), Fake(["make", "repro"]), Fake(["bash"])]
    assert _owners(*chain) == chain


def test_under_a_workspace_or_temp_experiment_every_parent_is_watched() -> None:
    chain = [Fake([PY, "-m", "dvc", "exp", "run", "--temp"]), Fake(["make", "experiments"])]
    assert _owners(*chain) == chain


def test_a_queued_stage_watches_its_worker_not_the_command_that_started_the_queue() -> None:
    executor = Fake([PY, DVC, "exp", "exec-run", "--infofile", "x.run"])
    worker = Fake([PY, DVC, "exp", "queue-worker", "dvc-exp-1@localhost", "--clean"])
    follower = Fake([PY, DVC, "exp", "run", "--run-all"])
    above = [follower, Fake([PY, "-m", "mlops_template.review.experiments", "run"]),
             Fake(["make", "experiments"])]  # fmt: skip
    assert _owners(executor, worker, *above) == [executor, worker]


def test_a_process_that_is_gone_is_not_dvc() -> None:
    gone = Gone()
    assert not stopping._is_dvc(gone)  # type: ignore[arg-type]
    assert _owners(gone, Fake(["make"])) == [gone, Fake(["make"])]
