"""What the tests share: the repository, tool requirements, params variants, the team's own
rows, corruptions derived from the schema, and throwaway copies of the project.

Nothing here names a column: rows come from the team's data (the built-in sample, or the
file `data.source` names), and every corruption follows from `TABLE`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_template.core import io as files
from mlops_template.core.model import ModelCard
from mlops_template.core.params import Params, load_params, parse_params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Column, Kind, Table
from mlops_template.core.validation import WHOLE_TABLE, validate_table

ROOT = Path(__file__).resolve().parents[1]
IN_CI = bool(os.environ.get("CI"))
VENV_BIN = Path(sys.executable).parent


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


# --- params ---------------------------------------------------------------------------------


def raw_params(root: Path = ROOT) -> dict[str, Any]:
    """A fresh, mutable copy of params.yaml as plain YAML data (to build variants from)."""
    raw: dict[str, Any] = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    return raw


def set_dotted(raw: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply {"split.seed": 3, ...} to nested YAML data in place; return it. A value of
    `DELETE` removes the key."""
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(key, None)
        else:
            node[key] = value
    return raw


DELETE = object()


def params_with(changes: dict[str, Any]) -> Params:
    """params.yaml with some keys changed, validated like the real file."""
    return parse_params(set_dotted(raw_params(), changes), origin="params.yaml (test variant)")


def uses_sample(root: Path = ROOT) -> bool:
    return bool(raw_params(root)["data"]["source"] == "sample")


def fast_changes(n_rows: int, root: Path = ROOT) -> dict[str, Any]:
    """Small and fast, but a real model with signal and a few segments: for tests that
    reproduce the pipeline in a copy of the project only to get a model, a bento or a report.
    The row count applies to the built-in sample; a team's own file is used whole."""
    changes: dict[str, Any] = {
        "model.hist_gradient_boosting.max_iter": 40,
        "threshold.cv_folds": 3,
        "evaluate.importance_repeats": 1,
        "evaluate.importance_max_rows": 300,
        "evaluate.min_segment_size": 60,
        "evaluate.min_segment_class_count": 5,
        "evaluate.curve_points": 60,
    }
    if uses_sample(root):
        changes["data.sample.n_rows"] = n_rows
    return changes


# --- the team's rows and what breaks them -------------------------------------------------------


def team_table(params: Params, n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Valid rows of the team's own table: the built-in sample (`n_rows` of them) or the file
    `data.source` names (validated; at most `n_rows` drawn with `seed`)."""
    if params.data.uses_sample:
        from mlops_template import sample

        cfg = sample.parse_sample(params.data.sample)
        frame = sample.generate(cfg.model_copy(update={"n_rows": n_rows or cfg.n_rows}))
    else:
        source = params.data.source
        path = source if "://" in source else str(ROOT / source)
        require(
            "://" in source or Path(path).is_file(),
            f"{source} (data.source) is not here: run `make pull` to fetch it from the DVC remote",
        )
        frame = files.read_table(path)
        if n_rows is not None and len(frame) > n_rows:
            frame = frame.sample(n=n_rows, random_state=seed)
    return validate_table(frame.reset_index(drop=True), source=params.data.source)


Corruption = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class Corrupt:
    """One way to break a valid table, and what the validation error must say about it."""

    id: str
    apply: Corruption
    column: str  # the column named in the error (WHOLE_TABLE for table-level checks)
    text: str  # text the message must contain


def _set(column: str, value: Any, row: int = 0) -> Corruption:
    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out[column] = out[column].astype(object)
        out.loc[out.index[row], column] = value
        return out

    return corrupt


def _unknown_category(col: Column) -> Any:
    if col.dtype == "int64":
        return max(int(c) for c in col.categories) + 1000  # type: ignore[call-overload]
    return "__not_a_category__"


def _too_many_nulls(col: Column) -> Corruption:
    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        n = min(len(out), math.floor(len(out) * col.max_null_fraction) + 2)
        out[col.name] = out[col.name].astype(object)
        out.loc[out.index[:n], col.name] = None
        return out

    return corrupt


def _duplicate(column: str) -> Corruption:
    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out.loc[out.index[1], column] = out.loc[out.index[0], column]
        return out

    return corrupt


def _column_corruptions(col: Column) -> list[Corrupt]:
    n = col.name
    cases: list[Corrupt] = []
    if col.max is not None:
        high = int(col.max) + 1 if col.dtype == "int64" else col.max * 2 + 1
        cases.append(Corrupt(f"{n}-above-max", _set(n, high), n, str(high)))
    if col.min is not None:
        low = int(col.min) - 1 if col.dtype == "int64" else col.min - abs(col.min) - 1
        cases.append(Corrupt(f"{n}-below-min", _set(n, low), n, str(low)))
    if col.dtype in ("int64", "float64") and not col.categories:
        cases.append(Corrupt(f"{n}-text", _set(n, "twelve"), n, "twelve"))
    if col.dtype == "int64" and col.kind is not Kind.ID:
        cases.append(Corrupt(f"{n}-fractional", _set(n, 2.5), n, "2.5"))
    if col.dtype == "float64":
        cases.append(Corrupt(f"{n}-infinite", _set(n, math.inf), n, "finite"))
    if not col.nullable:
        cases.append(Corrupt(f"{n}-null", _set(n, None), n, n))
    elif col.max_null_fraction < 1.0:
        cases.append(Corrupt(f"{n}-too-many-nulls", _too_many_nulls(col), n, "null_fraction"))
    if col.categories:
        bad = _unknown_category(col)
        cases.append(Corrupt(f"{n}-unknown-category", _set(n, bad), n, str(bad)))
        text = [c for c in col.categories if isinstance(c, str) and c.upper() != c]
        if text:
            cases.append(Corrupt(f"{n}-wrong-case", _set(n, text[0].upper()), n, text[0].upper()))
    if col.kind is Kind.BOOLEAN:
        cases.append(Corrupt(f"{n}-not-boolean-text", _set(n, "maybe"), n, "maybe"))
        cases.append(Corrupt(f"{n}-not-boolean-number", _set(n, 7), n, "is_boolean"))
    if col.kind is Kind.ID:
        cases.append(Corrupt(f"{n}-duplicate", _duplicate(n), n, "uniqueness"))
    if col.pattern:
        cases.append(Corrupt(f"{n}-pattern", _set(n, "?!"), n, "?!"))
    return cases


def corruptions(table: Table = TABLE) -> list[Corrupt]:
    """Every way the schema says a table can be wrong, each on one row or one column."""
    cases = [c for col in table.columns for c in _column_corruptions(col)]
    label = table.label
    wrong = "__neither__" if label.dtype == "str" else (2 if label.dtype == "int64" else "maybe")
    cases.append(
        Corrupt("label-not-a-label-value", _set(label.name, wrong), label.name, str(wrong))
    )
    if label.dtype == "int64":
        cases.append(Corrupt("label-fractional", _set(label.name, 0.5), label.name, "0.5"))
    first = table.features[0].name
    cases += [
        Corrupt("missing-column", lambda df: df.drop(columns=[first]), first, "missing"),
        Corrupt(
            "extra-column",
            lambda df: df.assign(__extra_column__=1),
            "__extra_column__",
            "not in the schema",
        ),
        Corrupt("empty-table", lambda df: df.iloc[:0], WHOLE_TABLE, "at_least"),
    ]
    for check in table.checks:
        if check.break_one_row is not None:
            cases.append(
                Corrupt(f"check-{check.name}", check.break_one_row, WHOLE_TABLE, check.name)
            )
    return cases


# --- throwaway copies of the project --------------------------------------------------------------


def uv_path() -> str:
    """uv for Makefile targets: `uv run` tells its children where it is; else PATH or .tools."""
    candidates = [os.environ.get("UV"), shutil.which("uv"), str(VENV_BIN / "uv"),
                  str(ROOT / ".tools/uv/bin/uv")]  # fmt: skip
    found = next((c for c in candidates if c and Path(c).is_file()), "uv")
    require(Path(found).is_file(), "uv is needed by the Makefile targets under test")
    return found


def _git_files(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    return [rel for rel in listed if rel and (root / rel).is_file()]


def dvc_tracked_data(root: Path, listed: list[str]) -> list[str]:
    """The files that `.dvc` files track (a team's source data), relative to `root`."""
    tracked = []
    for rel in listed:
        if not rel.endswith(".dvc"):
            continue
        meta = yaml.safe_load((root / rel).read_text(encoding="utf-8")) or {}
        for out in meta.get("outs", []):
            target = (root / rel).parent / out["path"]
            tracked.append(str(target.relative_to(root)))
    return tracked


@dataclass
class ProjectCopy:
    """A copy of the project in a temp dir, where commands run with this venv's tools and the
    copy's own code (PYTHONPATH), so tests exercise dvc.yaml and the Makefile for real."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)  # extra variables for every command

    @classmethod
    def create(
        cls, path: Path, changes: dict[str, Any], *, tests: bool = False, **env: str
    ) -> ProjectCopy:
        """Copy the files git knows (tracked, or new and not ignored; no outputs, no caches;
        the tests only if asked), the data the `.dvc` files track with it (a team's own data,
        which must have been pulled), `git init` on main, and apply `changes` to params.yaml."""
        listed = _git_files(ROOT)
        data = dvc_tracked_data(ROOT, listed)
        missing = [rel for rel in data if not (ROOT / rel).exists()]
        require(not missing, f"DVC-tracked data {missing} is missing: run `make pull` first")
        for rel in listed + data:
            if rel.startswith("tests/") and not tests:
                continue
            source = ROOT / rel
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        copy = cls(path, dict(env))
        copy.set_params(changes)
        copy.run("git", "init", "-q", "-b", "main")
        if data:  # into the copy's own DVC cache, so push / checkout / reports find them
            copy.dvc("commit", "--force", "--quiet", *[f"{rel}.dvc" for rel in data])
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

    @property
    def params(self) -> Params:
        return load_params(self.path / "params.yaml")

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    @property
    def card(self) -> ModelCard:
        """The copy's model card (read without this process's schema: the copy may have
        another table)."""
        return ModelCard.read(self.path / raw_params(self.path)["paths"]["model_card"])

    def reproduce(self, message: str = "pipeline reproduced") -> subprocess.CompletedProcess[str]:
        """`dvc repro`, then commit everything (dvc.lock, metrics) like an author would."""
        result = self.dvc("repro")
        self.commit(message)
        return result


# --- a real `bentoml serve` -------------------------------------------------------------------

SERVE_TIMEOUT_S = 180


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def unpack_bento(archive: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def start_server(bento_dir: Path, workdir: Path, **env: str) -> Server:
    """`bentoml serve` an unpacked bento with an empty BENTOML_HOME, on a free loopback port."""
    from mlops_template.serving.build.smoke import free_port

    port = free_port()
    log = workdir / "serve.log"
    full_env = {
        **os.environ,
        "BENTOML_HOME": str(workdir / "empty_bentoml_home"),
        "BENTOML_DO_NOT_TRACK": "True",
        **env,
    }
    full_env.pop("PYTHONPATH", None)
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # The service sets BENTOML_CONTAINERIZED in its own process when imported (in process, by
    # other tests of this session): a server starts from a plain environment unless told.
    if "BENTOML_CONTAINERIZED" not in env:
        full_env.pop("BENTOML_CONTAINERIZED", None)
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                str(bento_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


def stop_server(server: Server) -> None:
    from mlops_template.serving.build.smoke import stop_group

    stop_group(server.process)


def wait_server_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"bentoml serve exited early:\n{server.output()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready after {SERVE_TIMEOUT_S} s:\n{server.output()[-3000:]}")


# --- the example request and the mermaid renderer ---------------------------------------------


def example_records() -> list[dict[str, Any]]:
    example = raw_params()["paths"]["example"]
    data = json.loads((ROOT / example).read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = data["records"]
    return records


def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.M | re.S)


def chromium_path() -> str:
    """Debian's chromium here (.ci/run installs it); GitHub's runner images ship Chrome."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    found = next(filter(None, map(shutil.which, names)), None)
    require(found is not None, "chromium is not installed (apt-get install chromium)")
    assert found is not None
    return found


def render_mermaid(diagrams: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    """Render with the real mermaid package in headless Chromium (tests/js): one result per
    diagram, {"ok": bool, "svg": ..., "error": ...}."""
    js = ROOT / "tests" / "js"
    node = require_tool("node")
    chromium = chromium_path()
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


def probabilities_differ(a: np.ndarray, b: np.ndarray) -> int:
    """How many probabilities are not bitwise equal."""
    return int(np.sum(a != b))
