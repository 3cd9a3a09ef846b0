"""The loop end to end, with the real Makefile targets in a small copy of the project:
`make simulate SCENARIO=concept_drift && make monitor && make retrain`, then `make report` on
the branch it made compares the challenger with the champion on the fresh records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_template.core import io as files
from tests.support import ProjectCopy, fast_changes

pytestmark = pytest.mark.monitoring

WINDOW_ROWS = 2500


@pytest.fixture(scope="module")
def looped(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    base = tmp_path_factory.mktemp("loop")
    copy = ProjectCopy.create(
        base / "repo", fast_changes(3000), BENTOML_HOME=str(base / "bentoml_home")
    )
    copy.commit("copy of the template")
    copy.reproduce()
    return copy


def _json(copy: ProjectCopy, rel: str) -> dict:  # type: ignore[type-arg]
    return files.read_json(copy.path / rel)  # type: ignore[no-any-return]


def test_concept_drift_monitor_retrain_report(looped: ProjectCopy) -> None:
    copy = looped
    params = copy.params
    reports = params.monitor.reports
    copy.make("simulate", "SCENARIO=concept_drift", f"ROWS={WINDOW_ROWS}")
    checked = copy.make("monitor-check", check=False)
    assert checked.returncode != 0, checked.stdout + checked.stderr
    assert "Error 3" in checked.stderr, "the command exits 3: the rule says retrain"
    assert "retrain: true" in checked.stdout
    summary = _json(copy, f"{reports}/summary.json")
    assert summary["retrain"] is True
    window_id = summary["window"]["id"]
    champion = copy.card.version

    done = copy.make("retrain")
    assert "fresh labelled records" in done.stdout
    branch = f"{params.monitor.retrain.branch_prefix}{window_id}"
    assert copy.run("git", "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() == branch
    assert not copy.run("git", "status", "--porcelain", "--untracked-files=no").stdout.strip()
    changed = copy.run("git", "show", "--name-only", "--format=", "HEAD").stdout.split()
    dvc_file = f"{params.monitor.retrain.windows}/{window_id}.parquet.dvc"
    assert dvc_file in changed
    assert "dvc.lock" in changed
    assert params.paths.metrics in changed
    assert not copy.dvc("status", "--quiet", check=False).returncode, "dvc.lock is up to date"

    result = _json(copy, f"{reports}/retrain.json")
    c = result["comparison"]
    assert c["champion"]["version"] == champion != c["challenger"]["version"] == copy.card.version
    # sliding window: the new test set is this window's held-out records, all of them fresh
    n_test = _json(copy, params.paths.metrics)["n_test"]
    assert c["fresh_records"] == n_test > 0
    assert result["data"]["rows"] == WINDOW_ROWS
    assert isinstance(c["promoted"], bool)
    md = (copy.path / reports / "retrain.md").read_text("utf-8")
    assert window_id in md
    assert "| Expected profit |" in md

    copy.make("report")
    report = json.loads((copy.path / params.paths.pr_report_json).read_text("utf-8"))
    text = json.dumps(report)
    assert "the test set changed" in text, "the champion was re-scored on the fresh records"
    markdown = (copy.path / params.paths.pr_report).read_text("utf-8")
    assert f"{n_test:,} rows" in markdown

    # the logs still name the champion: its reference is found in git history now
    again = copy.make("monitor")
    assert "retrain: true" in again.stdout
    summary = _json(copy, f"{reports}/summary.json")
    main = copy.run("git", "rev-parse", "main").stdout.strip()
    assert summary["reference"]["revision"] == main
    assert summary["reference"]["model_version"] == champion


def test_retrain_refuses_without_a_retrain_verdict(looped: ProjectCopy, tmp_path: Path) -> None:
    reports = looped.path / looped.params.monitor.reports
    summary = json.loads((reports / "summary.json").read_text("utf-8"))
    (reports / "summary.json").write_text(json.dumps({**summary, "retrain": False}), "utf-8")
    refused = looped.make("retrain", check=False)
    assert refused.returncode != 0
    assert "retrain: false" in refused.stderr
