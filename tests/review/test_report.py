"""The pull-request report and the gate against a base revision, end to end.

A throwaway git repository is built from this project's tracked files (small sample, fast
model): `main` is committed after `dvc repro`, then branches change a training param, worsen
the model, or change the split. `make report` / `make gate BASE=main` run there through the
real Makefile. Expected numbers are always read from the files the pipeline wrote (or
recomputed here), never written into the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlops_template.core import io as storage
from mlops_template.core.model import load_model
from mlops_template.core.params import load_params
from mlops_template.core.schema import TABLE
from mlops_template.pipeline import evaluate
from tests.support import ProjectCopy, fast_changes, mermaid_blocks, raw_params, render_mermaid

pytestmark = pytest.mark.report

# Small params (several branches are reproduced), without the floors: they are for the full
# data, and only the comparison with the base is tested here.
REPORT_PARAMS = {
    **fast_changes(2500),
    "threshold.cv_folds": 2,
    "gate.floors": {"ml.roc_auc": 0.55},
    "gate.must_beat_contact_all": False,
    "gate.max_segment_roc_auc_gap": {},
}
LEARNING_RATE = raw_params()["model"]["hist_gradient_boosting"]["learning_rate"]
LOWER_IS_BETTER = {"ml.brier", "ml.log_loss"}
NEUTRAL = {
    "business.contact_rate",
    "business.break_even_precision",
    "ml.positive_rate",
    "threshold",
}


class Repo(ProjectCopy):
    """A throwaway repository built from the project, with `main` and branches."""

    @property
    def remote(self) -> Path:
        return self.path.parent / "remote"

    def report(
        self, *args: str, check: bool = True
    ) -> tuple[subprocess.CompletedProcess[str], str, dict[str, Any]]:
        proc = self.make("report", "BASE=main", *args, check=check)
        markdown = (self.path / "reports" / "pr_report.md").read_text(encoding="utf-8")
        payload = json.loads((self.path / "reports" / "pr_report.json").read_text("utf-8"))
        return proc, markdown, payload

    def metrics_at(self, rev: str) -> dict[str, Any]:
        return json.loads(self.run("git", "show", f"{rev}:reports/metrics.json").stdout)

    def workspace_metrics(self) -> dict[str, Any]:
        return storage.read_json(self.path / "reports" / "metrics.json")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A throwaway repository whose `main` holds a reproduced pipeline."""
    repo = Repo.create(tmp_path_factory.mktemp("pr-report") / "repo", REPORT_PARAMS)
    repo.python("-m", "dvc", "remote", "modify", "local", "url", str(repo.remote))
    repo.python("-m", "dvc", "repro", "--quiet")
    repo.commit("main: pipeline reproduced")
    return repo


@pytest.fixture(scope="module")
def main_model(repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of main's model and card, to re-score it independently of the report."""
    target = tmp_path_factory.mktemp("main-model")
    repo.run("git", "checkout", "-q", "main")
    repo.python("-m", "dvc", "checkout", "--quiet")
    for name in ("model.joblib", "model_card.json"):
        shutil.copy2(repo.path / "models" / name, target / name)
    return target


def _branch(repo: Repo, name: str, changes: dict[str, Any]) -> None:
    repo.run("git", "checkout", "-q", "-B", name, "main")
    repo.python("-m", "dvc", "checkout", "--quiet")
    repo.set_params(changes)
    repo.python("-m", "dvc", "repro", "--quiet")
    repo.commit(f"{name}: {changes}")


def _expected_marker(key: str, delta: float) -> str:
    if abs(delta) <= 1e-9:
        return "unchanged"
    if key in NEUTRAL:
        return "changed"
    better = delta < 0 if key in LOWER_IS_BETTER else delta > 0
    return "better" if better else "worse"


def _value(metrics: dict[str, Any], key: str) -> float:
    node: Any = metrics
    for part in key.split("."):
        node = node[part]
    return float(node)


def _tables(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


# --- a branch that changes a training param ------------------------------------------------


@pytest.fixture(scope="module")
def param_branch(repo: Repo) -> tuple[str, dict[str, Any]]:
    _branch(repo, "faster-learning", {"model.hist_gradient_boosting.learning_rate": 0.2})
    _, markdown, payload = repo.report()
    return markdown, payload


def test_report_shows_both_sides_deltas_markers_params_and_verdict(
    repo: Repo, param_branch: tuple[str, dict[str, Any]]
) -> None:
    markdown, payload = param_branch
    base, branch = repo.metrics_at("main"), repo.workspace_metrics()
    assert base != branch, "changing the learning rate should change the metrics"
    rows = {row["key"]: row for row in payload["metrics"]}
    assert list(rows)[:3] == [
        "business.expected_profit",
        "business.profit_vs_contact_all",
        "business.profit_vs_contact_none",
    ], "business metrics come first"
    assert list(rows)[-1] == "threshold"
    for key, row in rows.items():
        old, new = _value(base, key), _value(branch, key)
        assert row["base"] == pytest.approx(old), key
        assert row["branch"] == pytest.approx(new), key
        assert row["delta"] == pytest.approx(new - old, abs=1e-12), key
        assert row["marker"] == _expected_marker(key, new - old), (key, old, new, row)
    # The markdown table shows the same numbers, with a worded marker on every row.
    auc = next(line for line in _tables(markdown) if line.startswith("| ROC AUC |"))
    old_auc, new_auc = base["ml"]["roc_auc"], branch["ml"]["roc_auc"]
    assert f"{old_auc:.4f}" in auc
    assert f"{new_auc:.4f}" in auc
    assert f"{new_auc - old_auc:+.4f}" in auc
    assert rows["ml.roc_auc"]["marker"] in auc
    # Only the changed param, old -> new.
    assert [(p["key"], p["base"], p["branch"]) for p in payload["params"]] == [
        ("model.hist_gradient_boosting.learning_rate", LEARNING_RATE, 0.2)
    ]
    assert f"| `model.hist_gradient_boosting.learning_rate` | `{LEARNING_RATE}` | `0.2` |" in (
        markdown
    )
    # Verdict first, consistent with the gate's misses; plots as mermaid; same test set.
    first = markdown.splitlines()[0]
    assert first.startswith("## ✅ PASS" if not payload["misses"] else "## ❌ FAIL"), first
    assert payload["status"] == ("pass" if not payload["misses"] else "fail")
    assert len(mermaid_blocks(markdown)) == 2
    assert payload["like_for_like"] == []
    assert "same test set (same DVC hash)" in markdown
    assert "| Data hash: test |" in markdown
    assert "Lineage" in markdown


def test_every_mermaid_block_renders_and_a_broken_one_fails(
    param_branch: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    markdown, _ = param_branch
    blocks = mermaid_blocks(markdown)
    broken = blocks[0].replace("line [", "line [oops, ", 1)
    results = render_mermaid([*blocks, broken, "xychart-beta\n    bar [1, 2"], tmp_path)
    *real, wrong_value, unclosed = results
    for block, result in zip(blocks, real, strict=True):
        assert result["ok"], f"mermaid rejected:\n{block}\n{result['error']}"
    assert "line-plot-0" in real[0]["svg"], "no base ROC line"
    assert "line-plot-1" in real[0]["svg"], "no branch ROC line"
    assert "bar-plot-0" in real[1]["svg"], "importance bars"
    assert not wrong_value["ok"], "a diagram with a non-number in a series passed"
    assert not unclosed["ok"], "an unclosed diagram passed"
    assert wrong_value["error"]
    assert unclosed["error"]


def test_a_change_that_breaks_nothing_passes(repo: Repo) -> None:
    repo.run("git", "checkout", "-q", "-B", "docs-only", "main")
    repo.python("-m", "dvc", "checkout", "--quiet")
    (repo.path / "NOTES.md").write_text("a change that training does not depend on\n", "utf-8")
    repo.commit("docs only")
    _proc, markdown, payload = repo.report()
    assert payload["status"] == "pass", payload["misses"]
    assert {row["marker"] for row in payload["metrics"]} == {"unchanged"}
    assert markdown.startswith("## ✅ PASS")
    assert "No key of `params.yaml` differs" in markdown
    assert repo.make("gate", "BASE=main").returncode == 0


# --- a branch that makes the model worse -----------------------------------------------------


def test_worse_beyond_tolerance_fails_and_within_tolerance_passes(repo: Repo) -> None:
    _branch(
        repo,
        "weaker-model",
        {
            "model.hist_gradient_boosting.max_iter": 2,
            "model.hist_gradient_boosting.learning_rate": 0.02,
        },
    )
    base, branch = repo.metrics_at("main"), repo.workspace_metrics()
    drop = base["ml"]["roc_auc"] - branch["ml"]["roc_auc"]
    tolerance = load_params(repo.path / "params.yaml").gate.max_regression["ml.roc_auc"].absolute
    assert tolerance is not None
    assert drop > tolerance, (
        f"precondition: the weaker model should lose more than {tolerance} ROC AUC, lost {drop}"
    )
    _, markdown, payload = repo.report()
    assert payload["status"] == "fail"
    assert markdown.startswith("## ❌ FAIL")
    auc_miss = next(m for m in payload["misses"] if m.startswith("ml.roc_auc got worse"))
    assert f"{drop:.4f}" in auc_miss
    assert f"{base['ml']['roc_auc']:.4f}" in auc_miss
    gate = repo.make("gate", "BASE=main", check=False)
    assert gate.returncode != 0, "make gate BASE=main passed a model beyond tolerance"
    for miss in payload["misses"]:  # the gate names the same reasons as the report
        assert miss in gate.stderr, f"gate output lacks: {miss}\n{gate.stderr}"
    assert repo.make("gate", check=False).returncode == 0, "floors alone still pass (BASE unset)"

    # Widen every tolerance beyond what this branch lost: the same metrics now pass.
    tolerances = {}
    for key in ("business.expected_profit", "ml.roc_auc", "ml.pr_auc", "ml.brier"):
        worse = _value(base, key) - _value(branch, key)
        worse = -worse if key in LOWER_IS_BETTER else worse
        tolerances[key] = {"absolute": round(max(worse, 0.0) * 2 + 1e-3, 6)}
    widened = {"gate.max_regression": tolerances, "gate.max_segment_roc_auc_drop": 1.0}
    repo.set_params(widened)
    _, markdown, payload = repo.report()
    assert payload["status"] == "pass", payload["misses"]
    assert "changes the gate's own rules" in markdown
    assert repo.make("gate", "BASE=main").returncode == 0
    repo.run("git", "checkout", "-q", "--", "params.yaml")


# --- a branch that changes the split: champion vs challenger on the same data ---------------


def test_changed_split_rescores_the_base_model_on_the_branch_test_set(
    repo: Repo, main_model: Path
) -> None:
    _branch(repo, "new-split", {"split.seed": 7})
    _, markdown, payload = repo.report()
    assert payload["like_for_like"], "a changed test set must trigger the like-for-like scoring"
    assert "test set changed" in payload["like_for_like"][0]
    assert "Like-for-like" in markdown
    assert "re-scored on **this branch's test set**" in markdown
    # The base numbers are main's model scored here on the branch's test set, not main's file.
    params = load_params(repo.path / "params.yaml")
    test = storage.read_table(repo.path / params.paths.test)
    model = load_model(main_model / "model.joblib", main_model / "model_card.json")
    expected = evaluate.evaluate_model(test, model, params)
    assert payload["base_metrics"]["ml"] == pytest.approx(expected["ml"])
    assert payload["base_metrics"]["business"] == pytest.approx(expected["business"])
    assert payload["base_metrics"] != payload["base"]["metrics"]
    rows = {row["key"]: row for row in payload["metrics"]}
    assert rows["ml.roc_auc"]["base"] == pytest.approx(expected["ml"]["roc_auc"])
    assert rows["ml.positive_rate"]["base"] == pytest.approx(rows["ml.positive_rate"]["branch"])
    data = {row["label"]: row for row in payload["data"]}
    assert data["Data hash: test"]["changed"]
    assert not data["Data hash: raw"]["changed"]


# --- the base cannot be compared ------------------------------------------------------------


def test_base_without_metrics_is_a_clear_error_without_tables(repo: Repo) -> None:
    readme = repo.run("git", "hash-object", "-w", "README.md").stdout.strip()
    tree_sha = subprocess.run(
        ["git", "mktree"],
        cwd=repo.path,
        input=f"100644 blob {readme}\tREADME.md\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    commit = repo.run("git", "commit-tree", tree_sha, "-m", "no pipeline here").stdout.strip()
    repo.run("git", "branch", "-f", "no-pipeline", commit)
    repo.run("git", "checkout", "-q", "main")
    repo.python("-m", "dvc", "checkout", "--quiet")

    proc = repo.make("report", "BASE=no-pipeline", check=False)
    assert proc.returncode != 0
    markdown = (repo.path / "reports" / "pr_report.md").read_text(encoding="utf-8")
    payload = json.loads((repo.path / "reports" / "pr_report.json").read_text("utf-8"))
    assert payload["status"] == "error"
    assert repo.params.paths.metrics in payload["error"]
    assert "no dvc.yaml" in payload["error"]
    assert markdown.startswith("## ⚠️ NO COMPARISON")
    assert not _tables(markdown)
    assert "```mermaid" not in markdown
    assert "no dvc.yaml" in proc.stderr

    proc = repo.make("gate", "BASE=does-not-exist", check=False)
    assert proc.returncode != 0
    assert "'does-not-exist' is not a commit" in proc.stderr


# --- nothing cached: the base is reproduced in a temporary worktree -------------------------


def test_base_missing_from_cache_and_remote_is_reproduced_in_a_worktree(
    repo: Repo, param_branch: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    clone = Repo(tmp_path / "clone")  # its .dvc/config already names main's remote
    repo.run("git", "clone", "-q", "--branch", "faster-learning", str(repo.path), str(clone.path))
    clone.run("git", "branch", "main", "origin/main")
    clone.python("-m", "dvc", "repro", "--quiet")  # only the branch: main is in no cache
    assert clone.run("git", "status", "--porcelain").stdout == "", "repro changed tracked files"
    proc, _, payload = clone.report()
    assert payload["base"]["origin"] == "reproduced in a temporary worktree"
    assert "reproducing" in proc.stderr
    # Reproducing main gives exactly main's committed numbers (a deterministic pipeline).
    assert payload["base"]["metrics"] == repo.metrics_at("main")
    assert clone.run("git", "worktree", "list").stdout.count("\n") == 1, "worktree left behind"
    assert clone.make("check-lock").returncode == 0


# --- a branch whose table is another one -----------------------------------------------------


def _feature_made_metadata(repo: Repo) -> str:
    """Edit the copy's schema module as a team would: one numeric feature is no longer used."""
    params = repo.params
    name = next(
        n for n in TABLE.feature_names
        if TABLE.by_name[n].kind.value == "numeric" and n not in params.model.monotonic
    )  # fmt: skip
    schema = repo.path / "src" / TABLE.__module__.split(".")[0] / "core" / "schema.py"
    schema.write_text(
        schema.read_text(encoding="utf-8")
        + "\n\nimport dataclasses  # noqa: E402\n\n"
        + "TABLE = dataclasses.replace(TABLE, columns=tuple(  # type: ignore[misc]\n"
        + f"    dataclasses.replace(c, kind=Kind.METADATA) if c.name == {name!r} else c\n"
        + "    for c in TABLE.columns))\n",
        encoding="utf-8",
    )
    return name


def test_a_base_with_another_table_is_reported_not_crashed(repo: Repo) -> None:
    repo.run("git", "checkout", "-q", "-B", "other-table", "main")
    repo.python("-m", "dvc", "checkout", "--quiet")
    name = _feature_made_metadata(repo)
    repo.python("-m", "dvc", "repro", "--quiet")
    repo.commit("other-table: a feature became metadata")
    proc, markdown, payload = repo.report()
    assert "Traceback" not in proc.stderr
    assert payload["not_comparable"].startswith("the two revisions learn from different tables")
    assert f"column `{name}`: kind 'numeric' -> 'metadata'" in payload["schema_changes"]
    assert "Not like-for-like" in markdown.split("### Metrics")[0], "said at the top"
    assert payload["like_for_like"] == []
    assert payload["base_metrics"] == repo.metrics_at("main"), "each side's own numbers"
    assert payload["status"] == "pass", payload["misses"]  # floors only (floors_only)
    gate = repo.make("gate", "BASE=main")
    assert "not like-for-like" in gate.stderr
    repo.set_params({"gate.on_schema_change": "fail"})
    failed = repo.make("gate", "BASE=main", check=False)
    assert failed.returncode != 0
    assert "gate.on_schema_change is 'fail'" in failed.stderr
    repo.run("git", "checkout", "-q", "--", "params.yaml")
