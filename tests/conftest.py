"""Shared fixtures. Tiers are markers (see pyproject.toml); `pytest -m unit` runs one tier."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_template import storage
from mlops_template.params import Params, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]
IN_CI = bool(os.environ.get("CI"))
VENV_BIN = Path(sys.executable).parent

# Small and fast, but a real model with signal and a few segments: for tests that reproduce
# the pipeline in a copy of the project only to get a model, a bento or a report out of it.
SMALL = {
    "data.sample.n_rows": 3000,
    "model.hist_gradient_boosting.max_iter": 40,
    "threshold.cv_folds": 3,
    "evaluate.importance_repeats": 1,
    "evaluate.importance_max_rows": 300,
    "evaluate.min_segment_size": 100,
    "evaluate.curve_points": 60,
}


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


def uv_path() -> str:
    """uv for Makefile targets: `uv run` tells its children where it is; else PATH or .tools."""
    found = os.environ.get("UV") or shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    require(Path(found).is_file(), "uv is needed by the Makefile targets under test")
    return found


@dataclass
class ProjectCopy:
    """A copy of the project in a temp dir, where commands run with this venv's tools and the
    copy's own code (PYTHONPATH), so tests exercise dvc.yaml and the Makefile for real."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)  # extra variables for every command

    @classmethod
    def create(cls, path: Path, changes: dict[str, Any], **env: str) -> ProjectCopy:
        """Copy the files git knows (tracked, or new and not ignored; no outputs, no caches,
        no tests), `git init` on main, and apply `changes` to params.yaml."""
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.split("\0")  # fmt: skip
        for rel in filter(None, listed):
            source = ROOT / rel
            if source.is_file() and not rel.startswith("tests/"):
                (path / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, path / rel)
        copy = cls(path, dict(env))
        copy.set_params(changes)
        copy.run("git", "init", "-q", "-b", "main")
        return copy

    def run(
        self, *args: str, check: bool = True, timeout: float = 900, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(self.path / "src"),
            "DVC_NO_ANALYTICS": "1",
            "BENTOML_DO_NOT_TRACK": "True",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.invalid",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.invalid",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "commit.gpgsign",
            "GIT_CONFIG_VALUE_0": "false",
            **self.env,
            **extra,
        }
        env.pop("GITHUB_STEP_SUMMARY", None)
        proc = subprocess.run(
            args, cwd=self.path, env=env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            pytest.fail(
                f"`{' '.join(args)}` exited {proc.returncode}\n--- stdout\n"
                f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
            )
        return proc

    def python(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, *args, check=check)

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "dvc", *args, check=check)

    def make(
        self, *args: str, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        """The real Makefile targets, with this venv instead of `uv sync` + `uv run`."""
        return self.run(
            "make", "-o", ".venv/.synced", "RUN=env", f"UV={uv_path()}", *args, check=check,
            **extra,
        )  # fmt: skip

    def set_params(self, changes: dict[str, Any]) -> None:
        path = self.path / "params.yaml"
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        path.write_text(yaml.safe_dump(set_dotted(raw, changes), sort_keys=False), "utf-8")

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    @property
    def card(self) -> dict[str, Any]:
        """The copy's model card (sha256, version, threshold, ...)."""
        params = load_params(self.path / "params.yaml")
        data: dict[str, Any] = storage.read_json(self.path / params.paths.model_card)
        return data

    def reproduce(self, message: str = "pipeline reproduced") -> subprocess.CompletedProcess[str]:
        """`dvc repro`, then commit everything (dvc.lock, metrics) like an author would."""
        result = self.dvc("repro")
        self.commit(message)
        return result


@pytest.fixture(scope="session")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    """A copy with the pipeline reproduced on SMALL params and committed on main. Shared by
    the service and container tiers: treat it as read-only (build into their own dirs)."""
    base = tmp_path_factory.mktemp("small")
    copy = ProjectCopy.create(base / "repo", SMALL, BENTOML_HOME=str(base / "bentoml_home"))
    copy.commit("copy of the template")
    copy.reproduce()
    return copy


def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.M | re.S)


def render_mermaid(diagrams: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    """Render with the real mermaid package in headless Chromium (tests/js): one result per
    diagram, {"ok": bool, "svg": ..., "error": ...}."""
    js = ROOT / "tests" / "js"
    node = require_tool("node")
    # Debian's chromium here (.ci/run installs it); GitHub's runner images ship Chrome.
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    chromium = next(filter(None, map(shutil.which, names)), None)
    require(chromium is not None, "chromium is not installed (apt-get install chromium)")
    require(
        (js / "node_modules" / "mermaid").is_dir()
        and (js / "node_modules" / "playwright-core").is_dir(),
        "tests/js has no node_modules: run `make js-deps`",
    )
    source = tmp_path / "diagrams.json"
    source.write_text(json.dumps(diagrams), encoding="utf-8")
    proc = subprocess.run(
        [node, str(js / "render_mermaid.mjs"), str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, "CHROMIUM_PATH": str(chromium)},
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"render_mermaid.mjs failed:\n{proc.stderr[-3000:]}"
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results
