"""The repository around the pipeline: git and dvc.lock, read without importing DVC.

One git helper (`git`) for every caller: it raises `RepoError` with git's own message, and
`git_or_none` is the same call for callers that can do without the answer.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mlops_template.core.errors import InputError

LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"


class RepoError(InputError):
    """A git command or dvc.lock cannot give what was asked; the message says which."""


def git(root: Path, *args: str) -> str:
    """stdout of `git <args>` in `root` (stripped), or RepoError with git's message."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RepoError(f"git {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise RepoError(
            f"git {' '.join(args)} failed: {detail[-1] if detail else f'exit {done.returncode}'}"
        )
    return done.stdout.strip()


def git_or_none(root: Path, *args: str) -> str | None:
    try:
        return git(root, *args)
    except RepoError:
        return None


def git_show(root: Path, rev: str, path: str) -> bytes | None:
    """The bytes of `path` at `rev`, or None when that revision has no such file."""
    done = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, check=False, timeout=60
    )
    return done.stdout if done.returncode == 0 else None


def lock_outputs(lock: Any) -> dict[str, str]:
    """path -> md5 of every stage output recorded in a parsed dvc.lock (any revision's)."""
    outputs: dict[str, str] = {}
    stages = lock.get("stages", {}) if isinstance(lock, dict) else {}
    for stage in stages.values():
        for out in stage.get("outs", []) or []:
            if isinstance(out, dict) and isinstance(out.get("md5"), str) and "path" in out:
                outputs[str(out["path"])] = out["md5"]
    return outputs


def read_lock(root: Path) -> tuple[str, dict[str, str]]:
    """dvc.lock's sha256 and its outputs, or RepoError when there is none."""
    path = root / LOCK_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RepoError(f"{path}: not found; run `dvc repro` first") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), lock_outputs(yaml.safe_load(text))
