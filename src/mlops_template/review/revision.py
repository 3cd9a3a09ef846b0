"""The two sides of a pull-request comparison: the workspace and a base git revision.

The base side's small files (params.yaml, the metrics, dvc.lock) come from git. Its plot data
and, when needed, its model come from DVC by the hashes in the base's dvc.lock: the local cache
first, then the remote. When DVC cannot provide them (no remote, nothing cached) the base
revision is reproduced in a temporary `git worktree` that shares this repository's DVC cache
(so DVC's run-cache skips every stage it has seen before). If even that fails the comparison
stops with a message that says why: it never goes on with one side missing.

A model is only ever loaded through `model.load_model`, which checks its sha256 first.
`Side.schema` is the table declaration each revision validated its data against (recorded in
its data summary), so the comparison can tell when the two sides are different tables.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops_template.core import model as model_io
from mlops_template.core.metrics import confusion_counts
from mlops_template.core.params import Params
from mlops_template.core.repo import LOCK_FILE, PARAMS_FILE, RepoError, git, git_show, lock_outputs
from mlops_template.core.table import Table

log = logging.getLogger(__name__)

# Data outputs whose DVC hashes say whether the data changed, in pipeline order.
DATA_PATHS = ("raw", "validated", "train", "test")


class RevisionError(RepoError):
    """A side of the comparison cannot be obtained; the message says which and why."""


class ArtifactUnavailableError(RevisionError):
    """DVC could not provide a file of the base revision (not cached, no reachable remote)."""


@dataclass(frozen=True, slots=True)
class Plots:
    roc: list[tuple[float, float]]  # (false positive rate, true positive rate)
    importance: list[tuple[str, float]]  # (feature, mean permutation importance), best first
    confusion: dict[str, int]  # tp, fp, fn, tn at the model's threshold


@dataclass(frozen=True, slots=True)
class Side:
    """Everything the report needs from one revision."""

    name: str  # "main", "workspace", ...
    commit: str  # full sha of the commit ("" when the work tree is not a commit)
    dirty: bool  # the work tree has uncommitted changes (workspace side only)
    params: dict[str, Any]  # params.yaml as plain data (an older base may not fit today's model)
    paths: dict[str, str]  # that revision's `paths`
    metrics: dict[str, Any]
    data_summary: dict[str, Any] | None
    outs: dict[str, str]  # DVC-tracked path -> md5 from that revision's dvc.lock
    card: model_io.ModelCard | None  # None when absent or of a format this code cannot read
    plots: Plots | None
    origin: str  # how it was obtained, for the report's footer

    def out_hash(self, key: str) -> str | None:
        """The DVC hash of `paths.<key>` (e.g. "test") on this side."""
        path = self.paths.get(key)
        return self.outs.get(path) if path else None

    @property
    def schema(self) -> dict[str, Any] | None:
        """The table declaration recorded by that revision's validate stage (None: older)."""
        summary = self.data_summary or {}
        recorded = summary.get("schema")
        return recorded if isinstance(recorded, dict) else None


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """A revision's model file and card, as bytes (loaded only through `load`)."""

    model: bytes
    card: bytes

    def load(self, table: Table) -> model_io.LoadedModel:
        """Load (hash-checked) for scoring a table declared as `table`; raises
        ModelIntegrityError when the model does not fit that declaration."""
        with tempfile.TemporaryDirectory(prefix="pr-report-model-") as tmp:
            model_path, card_path = Path(tmp, "model.joblib"), Path(tmp, "model_card.json")
            model_path.write_bytes(self.model)
            card_path.write_bytes(self.card)
            return model_io.load_model(model_path, card_path, table)


@dataclass(frozen=True, slots=True)
class Base:
    side: Side
    model: ModelFiles | None  # fetched for a like-for-like re-scoring or the paired bootstrap


# --- reading files of one revision --------------------------------------------------------

Reader = Callable[[str], bytes | None]  # relative path -> bytes, or None when it is absent


def _run(args: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RevisionError(f"{what} failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc.stdout


def resolve(root: Path, rev: str) -> str:
    """The full commit sha of `rev`, or a clear error naming it."""
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except RepoError:
        raise RevisionError(
            f"base revision '{rev}' is not a commit in this repository (in CI fetch it first, "
            "e.g. `git fetch --depth=1 origin main`)"
        ) from None


def git_reader(root: Path, sha: str) -> Reader:
    def read(path: str) -> bytes | None:
        return git_show(root, sha, path)

    return read


def disk_reader(root: Path) -> Reader:
    def read(path: str) -> bytes | None:
        file = root / path
        return file.read_bytes() if file.is_file() else None

    return read


def dvc_reader(root: Path, sha: str) -> Reader:
    """Files of revision `sha` from the DVC cache or remote, by that revision's dvc.lock."""
    from dvc.api import DVCFileSystem  # slow import; only the base side needs it

    fs = DVCFileSystem(str(root), rev=sha)

    def read(path: str) -> bytes | None:
        try:
            data: bytes = fs.read_bytes(path)
        except Exception as exc:  # DVC raises many types (no remote, missing file, ...)
            raise ArtifactUnavailableError(
                f"{path} of {sha[:12]} is not in the DVC cache and no remote provided it "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''})"
            ) from None
        return data

    return read


def _text(read: Reader, path: str) -> str | None:
    data = read(path)
    return None if data is None else data.decode("utf-8")


def _json(read: Reader, path: str) -> Any:
    text = _text(read, path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RevisionError(f"{path}: not valid JSON ({exc})") from None


def _yaml(read: Reader, path: str) -> Any:
    text = _text(read, path)
    return None if text is None else yaml.safe_load(text)


def read_plots(read: Reader, plots_dir: str) -> Plots | None:
    """The ROC curve, importance ranking and confusion counts from a plots directory."""
    roc = _json(read, f"{plots_dir}/roc.json")
    importance = _json(read, f"{plots_dir}/importance.json")
    confusion_csv = _text(read, f"{plots_dir}/confusion.csv")
    if roc is None or importance is None or confusion_csv is None:
        return None
    return Plots(
        roc=[(float(p["fpr"]), float(p["tpr"])) for p in roc],
        importance=[(str(p["feature"]), float(p["importance"])) for p in importance],
        confusion=confusion_counts(
            (int(r["actual"]), int(r["predicted"]))
            for r in csv.DictReader(io.StringIO(confusion_csv))
        ),
    )


def _side(
    name: str, commit: str, read: Reader, artifacts: Reader, defaults: dict[str, str], origin: str
) -> Side:
    """One revision's side: small files through `read`, DVC-tracked ones through `artifacts`."""
    raw = _yaml(read, PARAMS_FILE)
    raw = raw if isinstance(raw, dict) else {}
    paths = {**defaults, **{k: str(v) for k, v in (raw.get("paths") or {}).items()}}
    metrics = _json(read, paths["metrics"])
    if not isinstance(metrics, dict):
        raise RevisionError(f"{name} ({commit[:12] or 'work tree'}): no {paths['metrics']}")
    return Side(
        name=name,
        commit=commit,
        dirty=False,
        params=raw,
        paths=paths,
        metrics=metrics,
        data_summary=_json(read, paths["data_summary"]),
        outs=lock_outputs(_yaml(read, LOCK_FILE)),
        card=_card(_json(artifacts, paths["model_card"])),
        plots=read_plots(artifacts, paths["plots"]),
        origin=origin,
    )


def _card(raw: Any) -> model_io.ModelCard | None:
    try:
        return model_io.ModelCard.model_validate(raw) if isinstance(raw, dict) else None
    except ValidationError:
        return None


# --- the two sides ------------------------------------------------------------------------


def workspace(root: Path, params: Params) -> Side:
    """The branch side: whatever the work tree holds after `dvc repro`."""
    read = disk_reader(root)
    commit = git(root, "rev-parse", "HEAD")
    dirty = bool(git(root, "status", "--porcelain", "--untracked-files=no"))
    side = _side("this branch", commit, read, read, params.paths.model_dump(), "work tree")
    return replace(side, dirty=dirty)


def committed(root: Path, rev: str, name: str, defaults: dict[str, str]) -> Side:
    """A committed revision's side (a registered model version, for the audit pack): small
    files from git, DVC-tracked ones from the DVC cache or remote, by that revision's
    dvc.lock. `defaults` are the paths to use where its params.yaml has none."""
    sha = resolve(root, rev)
    return _side(
        name, sha, git_reader(root, sha), dvc_reader(root, sha), defaults, "git + DVC cache/remote"
    )


def model_files(read: Reader, paths: dict[str, str]) -> ModelFiles:
    """A revision's model file and card, through `read` (raises ArtifactUnavailableError)."""
    model_bytes, card_bytes = read(paths["model"]), read(paths["model_card"])
    if model_bytes is None or card_bytes is None:
        raise ArtifactUnavailableError(f"{paths['model']} or its card is missing")
    return ModelFiles(model_bytes, card_bytes)


def _model_if(
    read: Reader, paths: dict[str, str], *, needed: bool, wanted: bool
) -> ModelFiles | None:
    """The model files when `needed` (an error if absent), or only if available when `wanted`
    (the paired bootstrap's base model: the comparison goes on without it)."""
    if needed:
        return model_files(read, paths)
    if not wanted:
        return None
    try:
        return model_files(read, paths)
    except ArtifactUnavailableError as exc:
        log.warning("the base model is not available for the paired bootstrap: %s", exc)
        return None


def _cache_dir(root: Path) -> str:
    return _run([sys.executable, "-m", "dvc", "cache", "dir"], root, "dvc cache dir").strip()


@contextmanager
def worktree(root: Path, sha: str) -> Iterator[Path]:
    """A temporary checkout of `sha` that shares this repository's DVC cache."""
    tmp = Path(tempfile.mkdtemp(prefix="pr-report-base-"))
    target = tmp / "base"
    git(root, "worktree", "add", "--detach", "--quiet", str(target), sha)
    try:
        if not (target / "dvc.yaml").is_file() or not (target / ".dvc").is_dir():
            raise RevisionError(f"{sha[:12]} has no dvc.yaml: there is no pipeline to reproduce")
        _run(
            [sys.executable, "-m", "dvc", "config", "--local", "cache.dir", _cache_dir(root)],
            target,
            "dvc config cache.dir",
        )
        yield target
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(target)], cwd=root, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=root, check=False)


def reproduce(target: Path, sha: str) -> None:  # pragma: no cover - exercised end to end
    """`dvc repro` of the checkout at `target` with that revision's own code."""
    env = {**os.environ, "PYTHONPATH": str(target / "src"), "DVC_NO_ANALYTICS": "1"}
    log.info("reproducing the base revision %s in a temporary worktree (dvc repro)", sha[:12])
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--quiet"], cwd=target, env=env, check=False
    )
    if proc.returncode != 0:
        raise RevisionError(
            f"`dvc repro` of the base revision {sha[:12]} failed (exit {proc.returncode}); "
            "see its output above"
        )


def needs_model(base: Side, branch: Side) -> list[str]:
    """Why the base model must be re-evaluated on the branch's test set (empty: it need not)."""
    reasons = []
    base_test, branch_test = base.out_hash("test"), branch.out_hash("test")
    if base_test is None or base_test != branch_test:
        reasons.append(
            f"the test set changed (DVC hash {_short(base_test)} on {base.name}, "
            f"{_short(branch_test)} on this branch)"
        )
    if base.params.get("business") != branch.params.get("business"):
        reasons.append("the business params (what a contact costs and earns) changed")
    return reasons


def _short(md5: str | None) -> str:
    return md5[:8] if md5 else "unknown"


def load_base(
    root: Path,
    rev: str,
    name: str,
    branch: Side,
    *,
    reproduce_if_needed: bool = True,
    with_model: bool = False,
) -> tuple[Base, list[str]]:
    """The base side, its model files when a like-for-like evaluation may be needed (or, with
    `with_model`, whenever DVC has them: for the paired bootstrap), and why.

    Order of attempts: git for the small files and DVC (cache, then remote) for the plots and
    the model; then a reproduction of the base in a temporary worktree.
    """
    sha = resolve(root, rev)
    problem = ""
    try:
        side = _side(
            name,
            sha,
            git_reader(root, sha),
            dvc_reader(root, sha),
            branch.paths,
            "git + DVC cache/remote",
        )
        if side.plots is None:
            raise ArtifactUnavailableError(f"plot data under {side.paths['plots']} is missing")
        reasons = needs_model(side, branch)
        model = _model_if(
            dvc_reader(root, sha), side.paths, needed=bool(reasons), wanted=with_model
        )
        return Base(side, model), reasons
    except RepoError as exc:
        problem = str(exc)
    if not reproduce_if_needed:
        raise RevisionError(f"base {rev} ({sha[:12]}): {problem}")
    log.warning("base %s: %s; reproducing it instead", rev, problem)
    try:
        with worktree(root, sha) as target:
            reproduce(target, sha)
            read = disk_reader(target)
            side = _side(name, sha, read, read, branch.paths, "reproduced in a temporary worktree")
            reasons = needs_model(side, branch)
            model = _model_if(read, side.paths, needed=bool(reasons), wanted=with_model)
    except RepoError as exc:
        raise RevisionError(f"base {rev} ({sha[:12]}): {problem}; and {exc}") from None
    return Base(side, model), reasons
