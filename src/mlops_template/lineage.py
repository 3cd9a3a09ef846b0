"""Lineage of a trained model: which code, data, params and metrics produced it.

`collect` reads it from a pipeline checkout (git, dvc.lock, params, the model card and the
metrics) and checks that the model and metrics in the workspace are the ones dvc.lock records.
The bento build stores the result next to the model (lineage.json), the service answers
`metadata` from it, and the container build turns it into image labels.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mlops_template import storage
from mlops_template.params import Params

LOCK_FILE = "dvc.lock"


class LineageError(storage.InputError):
    """The workspace does not hold what dvc.lock says; the message says what to run."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Frozen):
    version: str = Field(description="First 12 hex digits of the model file's sha256.")
    sha256: str = Field(description="sha256 of the model file, checked before every load.")
    kind: str
    threshold: float = Field(description="Contact when churn probability >= this.")
    n_train: int
    sklearn_version: str


class Lineage(_Frozen):
    """Everything needed to trace a served model back to the run that made it."""

    model: ModelInfo
    git_commit: str | None = Field(description="Commit of the build (None outside git).")
    git_dirty: bool | None = Field(description="Uncommitted changes at build time.")
    dvc_lock_sha256: str = Field(description="sha256 of dvc.lock at build time.")
    data: dict[str, str] = Field(description="md5 (as in dvc.lock) of every pipeline output.")
    params: dict[str, Any]
    metrics: dict[str, Any]


def git_output(root: Path, *args: str) -> str | None:
    """stdout of `git <args>` in `root`, or None when git fails or is missing."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def dvc_outputs(lock: Any) -> dict[str, str]:
    """path -> md5 of every stage output recorded in a parsed dvc.lock (any revision's)."""
    outputs: dict[str, str] = {}
    stages = lock.get("stages", {}) if isinstance(lock, dict) else {}
    for stage in stages.values():
        for out in stage.get("outs", []) or []:
            if isinstance(out, dict) and isinstance(out.get("md5"), str) and "path" in out:
                outputs[str(out["path"])] = out["md5"]
    return outputs


def _check_matches_lock(root: Path, outputs: dict[str, str], paths: list[str]) -> None:
    """Each file must exist and have the md5 dvc.lock recorded for it."""
    for rel in paths:
        recorded = outputs.get(rel)
        if recorded is None:
            raise LineageError(f"{LOCK_FILE}: no output '{rel}' recorded; run `dvc repro`")
        path = root / rel
        if not path.is_file():
            raise LineageError(f"{rel}: not found; run `dvc pull` or `dvc repro` first")
        if storage.file_digest(path, "md5") != recorded:
            raise LineageError(
                f"{rel}: differs from the version recorded in {LOCK_FILE}; run `dvc repro` "
                "(and commit dvc.lock) or `dvc checkout` so the bento's lineage is true"
            )


def collect(root: Path, params: Params) -> Lineage:
    """Read the lineage of the model in `root`, checking it against dvc.lock."""
    lock_path = root / LOCK_FILE
    try:
        lock_text = lock_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LineageError(f"{lock_path}: not found; run `dvc repro` first") from None
    outputs = dvc_outputs(yaml.safe_load(lock_text) or {})
    p = params.paths
    _check_matches_lock(root, outputs, [p.model, p.model_card, p.metrics])
    card = storage.read_json(root / p.model_card)
    commit = git_output(root, "rev-parse", "HEAD")
    status = git_output(root, "status", "--porcelain", "--untracked-files=no")
    return Lineage(
        model=ModelInfo(
            version=card["version"],
            sha256=card["sha256"],
            kind=card["kind"],
            threshold=card["threshold"],
            n_train=card["n_train"],
            sklearn_version=card["sklearn_version"],
        ),
        git_commit=commit or None,
        git_dirty=None if status is None else bool(status),
        dvc_lock_sha256=hashlib.sha256(lock_text.encode("utf-8")).hexdigest(),
        data=outputs,
        params=params.model_dump(mode="json"),
        metrics=storage.read_json(root / p.metrics),
    )


def to_json(lineage: Lineage) -> str:
    return json.dumps(lineage.model_dump(mode="json"), indent=2) + "\n"
