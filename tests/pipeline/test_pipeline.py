"""The real pipeline: `dvc repro`, `dvc push` / `dvc pull` in a temporary copy of the repo.

One copy (3,000 sample rows, its own temp-dir remote) is reproduced once per module; the
tests that change it put it back afterwards. DVC and Python come from the current venv.
"""

from __future__ import annotations

import configparser
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import yaml

from mlops_template.core import io as storage
from mlops_template.core.params import Params, load_params
from tests.support import (
    DELETE,
    ROOT,
    VENV_BIN,
    ProjectCopy,
    corruptions,
    fast_changes,
    uv_path,
)

pytestmark = pytest.mark.pipeline

N_ROWS = 3_000
RAN = re.compile(r"Running stage '([\w-]+)'")


def stages_run(result: subprocess.CompletedProcess[str]) -> list[str]:
    return RAN.findall(result.stdout + result.stderr)


def all_stages() -> list[str]:
    return list(yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"])


def digests(repo: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every file under each path (files or directories), keyed by relative path."""
    out = {}
    for rel in paths:
        target = repo / rel
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for f in files:
            out[str(f.relative_to(repo))] = storage.sha256_file(f)
    return out


@dataclass
class Repo:
    copy: ProjectCopy
    params: Params
    first: subprocess.CompletedProcess[str]
    outputs: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.copy.path

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.copy.dvc(*args, check=check)

    def lock(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load((self.path / "dvc.lock").read_text(encoding="utf-8"))
        return data["stages"]

    def restore(self) -> None:
        """Back to the committed state after a test changed params or data."""
        self.copy.run("git", "checkout", "HEAD", "--", ".")
        self.dvc("checkout", "--force")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("pipeline")
    copy = ProjectCopy.create(base / "repo", fast_changes(N_ROWS))
    copy.dvc("remote", "add", "-d", "-f", "test-remote", str(base / "remote"))
    copy.dvc("remote", "modify", "test-remote", "verify", "true")
    copy.commit("copy of the template")
    params = load_params(copy.path / "params.yaml")
    first = copy.reproduce("first dvc repro")
    p = params.paths
    outputs = [p.raw, p.validated, p.data_summary, p.train, p.test, p.model, p.model_card]
    outputs += [p.metrics, p.plots]
    return Repo(copy, params, first, outputs)


def test_repro_runs_every_stage_and_writes_every_output(repo: Repo) -> None:
    assert stages_run(repo.first) == all_stages()
    for rel in repo.outputs:
        assert (repo.path / rel).exists(), f"{rel} was not written"
    assert not (repo.path / repo.params.paths.validation_errors).exists()
    metrics = storage.read_json(repo.path / repo.params.paths.metrics)
    summary = storage.read_json(repo.path / repo.params.paths.data_summary)
    if repo.params.data.uses_sample:
        assert summary["rows"] == N_ROWS
    assert metrics["n_test"] == round(summary["rows"] * repo.params.split.test_size)
    assert 0.5 < metrics["ml"]["roc_auc"] <= 1.0
    card = storage.read_json(repo.path / repo.params.paths.model_card)
    assert card["sha256"] == storage.sha256_file(repo.path / repo.params.paths.model)
    assert set(repo.lock()) == set(all_stages())


def test_second_repro_does_nothing(repo: Repo) -> None:
    before = digests(repo.path, [*repo.outputs, "dvc.lock"])
    again = repo.dvc("repro")
    assert stages_run(again) == [], again.stdout
    assert "up to date" in again.stdout
    assert digests(repo.path, [*repo.outputs, "dvc.lock"]) == before
    assert "up to date" in repo.dvc("status").stdout


def test_push_then_pull_into_a_fresh_clone_restores_identical_outputs(
    repo: Repo, tmp_path: Path
) -> None:
    repo.dvc("push")
    clone = tmp_path / "clone"
    repo.copy.run("git", "clone", "-q", str(repo.path), str(clone))
    cached = [rel for rel in repo.outputs if not (clone / rel).exists()]
    assert repo.params.paths.model in cached, "outputs must come from DVC, not git"
    cloned = ProjectCopy(clone)
    cloned.dvc("pull")
    assert digests(clone, repo.outputs) == digests(repo.path, repo.outputs)
    assert stages_run(cloned.dvc("repro")) == [], "a pulled checkout should be up to date"


def test_changing_one_knob_reruns_only_the_stage_that_reads_it(repo: Repo) -> None:
    model_before = digests(repo.path, [repo.params.paths.model, repo.params.paths.train])
    lock_before = repo.lock()
    knob = repo.params.evaluate.min_segment_size
    try:
        repo.copy.set_params({"evaluate.min_segment_size": knob + 50})
        result = repo.dvc("repro")
        assert stages_run(result) == ["evaluate"], result.stdout
        lock_after = repo.lock()
        for stage in all_stages():
            if stage != "evaluate":
                assert lock_after[stage] == lock_before[stage], f"{stage} entry changed"
        assert lock_after["evaluate"]["params"] != lock_before["evaluate"]["params"]
        assert digests(repo.path, [repo.params.paths.model, repo.params.paths.train]) == (
            model_before
        )
    finally:
        repo.restore()


def test_corrupted_source_stops_at_validate_and_keeps_model_and_metrics(repo: Repo) -> None:
    paths = repo.params.paths
    kept = [paths.model, paths.model_card, paths.metrics]
    kept_before = digests(repo.path, kept)
    lock_before = repo.lock()
    source = repo.path / "data" / "external" / "corrupted_export.csv"
    # One bad row in an otherwise valid export: a value the schema does not allow.
    cases = corruptions()
    case = next(
        (c for c in cases if c.id.endswith("-unknown-category")),
        next(c for c in cases if c.id.endswith("-null")),
    )
    frame = case.apply(pd.read_parquet(repo.path / paths.raw))
    try:
        frame.to_csv(source, index=False)
        rel = str(source.relative_to(repo.path))
        repo.copy.set_params({"data.source": rel, "data.sample": DELETE})
        result = repo.dvc("repro", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert stages_run(result) == ["ingest", "validate"], output
        assert f"column '{case.column}'" in output
        assert rel in output, "the team's own file is named"
        assert case.text in output
        assert re.search(r"failed to reproduce '?validate", output), output
        assert digests(repo.path, kept) == kept_before, "model / metrics changed"
        lock_after = repo.lock()
        for stage in ("split", "train", "evaluate"):
            assert lock_after[stage] == lock_before[stage], f"dvc.lock entry of {stage} changed"
        report = storage.read_json(repo.path / paths.validation_errors)
        assert [f["column"] for f in report["failed_checks"]] == [case.column]
    finally:
        source.unlink(missing_ok=True)
        (repo.path / paths.validation_errors).unlink(missing_ok=True)
        repo.restore()
    assert "up to date" in repo.dvc("status").stdout


def test_default_remote_verifies_downloads_and_lives_outside_the_work_tree() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    default = config["core"]["remote"]
    remote = config[f"'remote \"{default}\"'"]
    assert remote.getboolean("verify"), "a tampered file in the remote must fail `dvc pull`"
    url = remote["url"]
    if "://" not in url:
        where = (ROOT / ".dvc" / url).resolve()
        assert ROOT.resolve() not in where.parents, f"remote {where} is inside the work tree"


# --- stopping the pipeline ---------------------------------------------------------------------


def _stage_processes(repo: Repo, stage: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        running = proc.info["status"] != psutil.STATUS_ZOMBIE  # a zombie has exited
        if running and f"pipeline.{stage}" in cmdline and proc.info["cwd"] == str(repo.path):
            found.append(proc)
    return found


@pytest.mark.parametrize("how", ["dvc repro", "make repro"])
def test_a_stopped_pipeline_stops_its_stage_and_writes_nothing_after(repo: Repo, how: str) -> None:
    """SIGTERM to `dvc repro` (or to `make`): the running stage ends too, and nothing is
    written after the stop, even once the stage would have finished. (DVC removes a stage's
    outputs when it starts it; `dvc checkout` brings the last good ones back from the cache.)"""
    paths = repo.params.paths
    outputs, kept = [paths.model, paths.model_card], [paths.metrics, "dvc.lock"]
    before = digests(repo.path, outputs + kept)
    try:
        # Slow enough to stop in the middle of training.
        repo.copy.set_params({"model.hist_gradient_boosting.max_iter": 1500})
        if how == "make repro":
            args = ["make", "-o", ".venv/.synced", "RUN=env", f"UV={uv_path()}", "repro"]
        else:
            args = [sys.executable, "-m", "dvc", "repro"]
        env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(repo.path / "src"), "DVC_NO_ANALYTICS": "1"}  # fmt: skip
        proc = subprocess.Popen(
            args, cwd=repo.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Running stage 'train'" in line:
                break
        deadline = time.monotonic() + 60
        while not _stage_processes(repo, "train") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _stage_processes(repo, "train"), "the train stage never started"
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGTERM)  # only that process, as `kill` or a CI timeout would
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _stage_processes(repo, "train") and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _stage_processes(repo, "train")
        for stage in left:
            stage.kill()
        assert not left, "the train stage outlived the pipeline that started it"
        time.sleep(3)  # long enough for an orphaned stage to have written its model
        assert not any((repo.path / rel).exists() for rel in outputs), "written after the stop"
        assert digests(repo.path, kept) == {k: before[k] for k in kept}
        repo.dvc("checkout", "--force", "--quiet", "train")
        assert digests(repo.path, outputs) == {k: before[k] for k in outputs}
    finally:
        repo.restore()
    assert "up to date" in repo.dvc("status").stdout


def test_a_typo_anywhere_in_params_fails_make_repro_naming_the_key(repo: Repo) -> None:
    params_file = repo.path / "params.yaml"
    original = params_file.read_text(encoding="utf-8")
    try:
        params_file.write_text(original + "modle:\n  kind: nothing\n", encoding="utf-8")
        proc = repo.copy.make("repro", check=False)
        assert proc.returncode != 0
        assert "unknown key 'modle'" in proc.stderr
        assert "Running stage" not in proc.stdout
        if repo.params.data.sample is not None:  # the sample's knobs are checked too
            params_file.write_text(original.replace("seed: 42", "sed: 42", 1), encoding="utf-8")
            proc = repo.copy.make("repro", check=False)
            assert proc.returncode != 0
            # The generator's own message (sample.parse_sample), not any word holding "sed".
            assert "'data.sample.sed': Extra inputs are not permitted" in proc.stderr
    finally:
        params_file.write_text(original, encoding="utf-8")
