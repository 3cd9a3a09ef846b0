"""A throwaway registry: a copy of the project with three versions on main, stage assignments at
controlled dates (a rollback among them) and its own temporary DVC remote.

Built once per session through the real Makefile (`make register`, `make assign`); git makes
every commit and tag at the date given in GIT_COMMITTER_DATE, so the history is known here:

    2026-09-01  commit A (pipeline run)        2026-09-02  register v1.0.0 at A
    2026-09-03  prod    <- v1.0.0              2026-09-15  commit B (learning rate changed)
    2026-09-16  register v1.1.0 at B           2026-09-17  staging <- v1.1.0
    2026-09-20  prod    <- v1.1.0              2026-10-10  prod    <- v1.0.0 (rollback)
    2026-10-20  commit C (docs only)           2026-10-21  register v1.1.1 at C
    2026-11-05  prod    <- v1.1.1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import ProjectCopy, fast_changes, raw_params

LEARNING_RATE = raw_params()["model"]["hist_gradient_boosting"]["learning_rate"]
# Small and fast; floors that a small model meets (the gate itself is tested elsewhere).
REGISTRY_PARAMS = {
    **fast_changes(2000),
    "threshold.cv_folds": 2,
    "gate.floors": {"ml.roc_auc": 0.55},
    "gate.must_beat_contact_all": False,
    "gate.max_segment_roc_auc_gap": {},
}


def when(day: str) -> str:
    """A git date: noon UTC of `day`."""
    return f"{day}T12:00:00+00:00"


@dataclass
class Registry:
    copy: ProjectCopy
    remote: Path
    commits: dict[str, str] = field(default_factory=dict)  # "A", "B", "C" -> sha
    # What GTO and DVC answered right after the rollback (before v1.1.1 took prod).
    after_rollback: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.copy.path

    def make(self, *args: str, day: str, check: bool = True, **env: str) -> Any:
        return self.copy.make(*args, check=check, GIT_COMMITTER_DATE=when(day), **env)

    def commit(self, name: str, message: str, day: str) -> str:
        self.copy.run("git", "add", "-A")
        stamp = when(day)
        self.copy.run(
            "git", "commit", "-q", "-m", message, GIT_COMMITTER_DATE=stamp, GIT_AUTHOR_DATE=stamp
        )
        sha = self.copy.run("git", "rev-parse", "HEAD").stdout.strip()
        self.commits[name] = sha
        return sha

    def reproduce(self) -> None:
        self.copy.dvc("repro")
        self.copy.dvc("push")


def gto_prod(path: Path) -> str | None:
    import gto.api

    state = gto.api.show(str(path))
    return state["model"]["stage"].get("prod")  # type: ignore[no-any-return]


def dvc_prod_rev(path: Path) -> str:
    import dvc.api

    return str(dvc.api.artifacts_show("model", stage="prod", repo=str(path))["rev"])


@pytest.fixture(scope="session")
def registry_repo(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return build_registry(tmp_path_factory.mktemp("registry"))


def build_registry(base: Path) -> Registry:
    """The history in the module docstring, in `base`/repo with its remote in `base`."""
    copy = ProjectCopy.create(base / "repo", REGISTRY_PARAMS)
    repo = Registry(copy, base / "dvc-remote")
    copy.dvc("remote", "add", "-d", "-f", "test-remote", str(repo.remote))
    repo.commit("template", "copy of the template", "2026-08-31")
    repo.reproduce()
    repo.commit("A", "pipeline run", "2026-09-01")
    repo.make("register", day="2026-09-02")
    repo.make("assign", "STAGE=prod", "VERSION=v1.0.0", day="2026-09-03")

    copy.set_params({"model.hist_gradient_boosting.learning_rate": LEARNING_RATE / 2})
    repo.reproduce()
    repo.commit("B", "a slower learning rate", "2026-09-15")
    repo.make("register", day="2026-09-16")
    repo.make("assign", "STAGE=staging", "VERSION=v1.1.0", day="2026-09-17")
    repo.make("assign", "STAGE=prod", "VERSION=v1.1.0", day="2026-09-20")
    rollback = "MESSAGE=rollback: incident 42, v1.1.0 under review"
    repo.make("assign", "STAGE=prod", "VERSION=v1.0.0", rollback, day="2026-10-10")
    repo.after_rollback = {"gto": gto_prod(repo.path), "dvc": dvc_prod_rev(repo.path)}

    notes = repo.path / "docs" / "notes.md"
    notes.parent.mkdir(exist_ok=True)
    notes.write_text("A change to the documentation only.\n", encoding="utf-8")
    repo.commit("C", "docs only", "2026-10-20")
    repo.make("register", day="2026-10-21")
    repo.make("assign", "STAGE=prod", "VERSION=v1.1.1", day="2026-11-05")
    return repo
