"""Lineage of a trained model: which code, data, params and metrics produced it.

`collect` reads it from a pipeline checkout (git, dvc.lock, params, the model card and the
metrics) and checks that the model and metrics in the workspace are the ones dvc.lock records.
The bento build stores it next to the model (lineage.json), the service answers `/metadata`
from it, and the container build turns it into image labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops_template.core import io as files
from mlops_template.core import repo
from mlops_template.core.errors import InputError
from mlops_template.core.model import ModelCard
from mlops_template.core.params import Params


class LineageError(InputError):
    """The workspace does not hold what dvc.lock says; the message says what to run."""


class Lineage(BaseModel):
    """Everything needed to trace a served model back to the run that made it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelCard
    card_sha256: str = Field(description="sha256 of the model card file.")
    git_commit: str | None = Field(description="Commit of the build (None outside git).")
    git_dirty: bool | None = Field(description="Uncommitted changes at build time.")
    dvc_lock_sha256: str = Field(description="sha256 of dvc.lock at build time.")
    data: dict[str, str] = Field(description="md5 (as in dvc.lock) of every pipeline output.")
    params: dict[str, Any]
    metrics: dict[str, Any]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def _check_matches_lock(root: Path, outputs: dict[str, str], paths: list[str]) -> None:
    """Each file must exist and have the md5 dvc.lock recorded for it."""
    for rel in paths:
        recorded = outputs.get(rel)
        if recorded is None:
            raise LineageError(f"{repo.LOCK_FILE}: no output '{rel}' recorded; run `dvc repro`")
        path = root / rel
        if not path.is_file():
            raise LineageError(f"{rel}: not found; run `dvc pull` or `dvc repro` first")
        if files.file_digest(path, "md5") != recorded:
            raise LineageError(
                f"{rel}: differs from the version recorded in {repo.LOCK_FILE}; run `dvc repro` "
                "(and commit dvc.lock) or `dvc checkout` so the lineage is true"
            )


def collect(root: Path, params: Params) -> Lineage:
    """Read the lineage of the model in `root`, checking it against dvc.lock."""
    lock_sha256, outputs = repo.read_lock(root)
    p = params.paths
    _check_matches_lock(root, outputs, [p.model, p.model_card, p.metrics, p.example])
    status = repo.git_or_none(root, "status", "--porcelain", "--untracked-files=no")
    return Lineage(
        model=ModelCard.read(root / p.model_card),
        card_sha256=files.sha256_file(root / p.model_card),
        git_commit=repo.git_or_none(root, "rev-parse", "HEAD") or None,
        git_dirty=None if status is None else bool(status),
        dvc_lock_sha256=lock_sha256,
        data=outputs,
        params=params.model_dump(mode="json"),
        metrics=files.read_json(root / p.metrics),
    )
