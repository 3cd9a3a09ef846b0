"""DVC experiments end to end, in a throwaway copy of the project with a bare git remote and
a temp-dir DVC remote: the params.yaml grid through DVC's queue (`make experiments`), the
ranking with intervals (`make experiments-table`), `dvc exp show`, one experiment promoted to
a branch and reviewed (`make report BASE=main`), `dvc exp push` / `pull`, and an experiment
reproduced from its ref on a clean clone with the same model hash.

Expected numbers are read from what DVC and the pipeline wrote, never written in here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from mlops_template.core import catalog
from mlops_template.core import io as storage
from tests.support import VENV_BIN, ProjectCopy, fast_changes

pytestmark = pytest.mark.experiments

LR = "model.hist_gradient_boosting.learning_rate"
LEAVES = "model.hist_gradient_boosting.max_leaf_nodes"
# A small sample and fast model; the gate's floors are for the full data. 2 x 2 + 1 = 5.
PARAMS = {
    **fast_changes(2000),
    "threshold.cv_folds": 2,
    "gate.floors": {"ml.roc_auc": 0.55},
    "gate.must_beat_contact_all": False,
    "gate.max_segment_roc_auc_gap": {},
    "uncertainty.resamples": 300,
    "experiments.grid": {LR: [0.05, 0.2], LEAVES: [7, 15]},
    "experiments.extra": [{"model.kind": "logistic_regression"}],
    "experiments.common": {},
}
NAMES = {
    "learning_rate=0.05,max_leaf_nodes=7",
    "learning_rate=0.05,max_leaf_nodes=15",
    "learning_rate=0.2,max_leaf_nodes=7",
    "learning_rate=0.2,max_leaf_nodes=15",
    "kind=logistic_regression",
}


@dataclass
class Lab:
    repo: ProjectCopy
    origin: Path  # bare git remote
    main: str  # the commit the experiments ran on
    table: dict[str, Any]  # reports/experiments.json
    markdown: str
    stdout: str

    def refs(self) -> dict[str, str]:
        """Experiment name -> commit, for the experiments of `main`."""
        out = self.repo.run(
            "git", "for-each-ref", "--format=%(refname) %(objectname)",
            f"refs/exps/{self.main[:2]}/{self.main[2:]}/",
        ).stdout  # fmt: skip
        return {ref.rsplit("/", 1)[1]: sha for ref, sha in (ln.split() for ln in out.splitlines())}

    def metrics_at(self, rev: str) -> dict[str, Any]:
        return json.loads(self.repo.run("git", "show", f"{rev}:reports/metrics.json").stdout)

    def card_at(self, rev: str) -> dict[str, Any]:
        """The model card an experiment recorded (DVC-cached): read through DVC at its rev."""
        code = (
            "import sys; from dvc.api import DVCFileSystem; "
            "sys.stdout.write(DVCFileSystem('.', rev=sys.argv[1]).read_text(sys.argv[2]))"
        )
        out = self.repo.python("-c", code, rev, "models/model_card.json").stdout
        card: dict[str, Any] = json.loads(out)
        return card


def _clone(lab: Lab, path: Path) -> ProjectCopy:
    ProjectCopy(path.parent).run("git", "clone", "-q", str(lab.origin), str(path))
    return ProjectCopy(path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    base = tmp_path_factory.mktemp("experiments")
    repo = ProjectCopy.create(base / "repo", PARAMS)
    origin = base / "origin.git"
    repo.run("git", "init", "-q", "--bare", "-b", "main", str(origin))
    repo.run("git", "remote", "add", "origin", str(origin))
    repo.dvc("remote", "modify", "local", "url", str(base / "dvc-remote"))  # committed
    repo.dvc("repro", "--quiet")
    repo.commit("main: pipeline reproduced")
    repo.run("git", "push", "-q", "origin", "main")
    repo.dvc("push", "--quiet")
    repo.make("experiments")
    shown = repo.make("experiments-table")
    main = repo.run("git", "rev-parse", "HEAD").stdout.strip()
    return Lab(
        repo,
        origin,
        main,
        storage.read_json(repo.path / "reports" / "experiments.json"),
        (repo.path / "reports" / "experiments.md").read_text(encoding="utf-8"),
        shown.stdout,
    )


# --- the grid and its ranking -----------------------------------------------------------------


def test_the_grid_runs_through_the_queue_without_a_stage_stopping_itself(lab: Lab) -> None:
    assert set(lab.refs()) == NAMES
    status = lab.repo.dvc("queue", "status").stdout
    for name in NAMES:
        line = next(ln for ln in status.splitlines() if f" {name} " in f" {ln} ")
        assert "Success" in line, status
        logs = lab.repo.dvc("queue", "logs", name).stdout
        assert "stopped" not in logs, f"a stage of {name} stopped itself:\n{logs[-2000:]}"
    for name, sha in lab.refs().items():
        params = yaml.safe_load(lab.repo.run("git", "show", f"{sha}:params.yaml").stdout)
        hgb = params["model"]["hist_gradient_boosting"]
        if name.startswith("learning_rate="):
            lr, leaves = (part.split("=")[1] for part in name.split(","))
            assert (hgb["learning_rate"], hgb["max_leaf_nodes"]) == (float(lr), int(leaves))
        else:
            assert params["model"]["kind"] == "logistic_regression"


def test_the_table_ranks_every_experiment_by_expected_profit_with_intervals(lab: Lab) -> None:
    rows = lab.table["experiments"]
    assert {r["name"] for r in rows if not r["baseline"]} == NAMES
    assert lab.table["baseline_is_commit"], lab.table["notes"]
    [baseline] = [r for r in rows if r["baseline"]]
    assert baseline["commit"] == lab.main
    profits = [r["metrics"]["business.expected_profit"] for r in rows]
    assert profits == sorted(profits, reverse=True)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    refs = lab.refs()
    base_metrics = lab.metrics_at(lab.main)
    for row in rows:
        recorded = lab.metrics_at(row["commit"])
        for key in ("business.expected_profit", "ml.roc_auc", "threshold"):
            assert row["metrics"][key] == catalog.value(recorded, key)
        if row["baseline"]:
            continue
        assert row["commit"] == refs[row["name"]]
        assert len(row["model_version"]) == 12
        for key, interval in row["vs_baseline"].items():
            # the bootstrap's point estimate is the pipeline's own difference
            delta = catalog.value(recorded, key) - catalog.value(base_metrics, key)
            assert interval["delta"] == pytest.approx(delta, abs=2e-6), (row["name"], key)
            assert interval["low"] <= interval["delta"] <= interval["high"]
            excludes = interval["low"] > 0 or interval["high"] < 0
            assert (interval["verdict"] != "noise") == excludes
    best = rows[0]
    assert f"**Most profitable: `{best['name']}`**" in lab.markdown
    assert lab.markdown in lab.stdout, "make experiments-table prints the table"
    assert lab.markdown.count("\n| ") >= 2 * (len(NAMES) + 1)


def test_dvc_exp_show_lists_them_with_their_metrics(lab: Lab) -> None:
    shown = json.loads(lab.repo.dvc("exp", "show", "--json").stdout)
    [commit] = [entry for entry in shown if entry["rev"] == lab.main]
    found = {}
    for group in commit.get("experiments") or []:
        for rev in group["revs"]:
            metrics = rev["data"]["metrics"]["reports/metrics.json"]["data"]
            found[rev["name"]] = metrics["business"]["expected_profit"]
    assert set(found) == NAMES
    by_name = {r["name"]: r for r in lab.table["experiments"]}
    for name, profit in found.items():
        assert profit == by_name[name]["metrics"]["business.expected_profit"]


# --- sharing, promoting, reproducing --------------------------------------------------------------


def test_push_and_pull_share_an_experiment_with_its_data(lab: Lab, tmp_path: Path) -> None:
    name = "kind=logistic_regression"
    lab.repo.dvc("exp", "push", "origin", name)
    remote = lab.repo.dvc("exp", "list", "origin", "--name-only").stdout.split()
    assert name in remote
    other = _clone(lab, tmp_path / "colleague")
    assert not other.run("git", "for-each-ref", "refs/exps/").stdout.strip()
    other.dvc("exp", "pull", "origin", name)
    shown = json.loads(other.dvc("exp", "show", "--json").stdout)
    names = {r["name"] for e in shown for g in e.get("experiments") or [] for r in g["revs"]}
    assert name in names
    other.dvc("exp", "apply", name)  # its params, dvc.lock and outputs, from the DVC remote
    card = storage.read_json(other.path / "models" / "model_card.json")
    assert card["sha256"] == lab.card_at(lab.refs()[name])["sha256"]
    assert storage.sha256_file(other.path / "models" / "model.joblib") == card["sha256"]


def test_an_experiment_reproduced_from_its_ref_on_a_clean_clone_has_the_same_model(
    lab: Lab, tmp_path: Path
) -> None:
    name = "learning_rate=0.2,max_leaf_nodes=7"
    sha = lab.refs()[name]
    recorded = lab.card_at(sha)["sha256"]
    lab.repo.dvc("exp", "push", "origin", name, "--no-cache")  # only the git ref
    clean = _clone(lab, tmp_path / "clean")
    clean.dvc("exp", "pull", "origin", name, "--no-cache")
    clean.run("git", "checkout", "-q", sha)
    assert not (clean.path / ".dvc" / "cache").exists(), "a clean clone has no DVC cache"
    clean.dvc("repro", "--quiet")
    card = storage.read_json(clean.path / "models" / "model_card.json")
    assert card["sha256"] == recorded
    assert storage.sha256_file(clean.path / "models" / "model.joblib") == recorded
    # and every other output, metric and lock entry: nothing changed in git
    assert clean.run("git", "status", "--porcelain", "--untracked-files=no").stdout == ""


@pytest.fixture(scope="module")
def promoted(lab: Lab) -> tuple[str, dict[str, Any], str]:
    """The best experiment as a branch, reviewed like any pull request."""
    best = next(r for r in lab.table["experiments"] if not r["baseline"])
    lab.repo.dvc("exp", "branch", best["name"], "promoted")
    lab.repo.run("git", "checkout", "-q", "promoted")
    lab.repo.dvc("checkout", "--quiet")
    lab.repo.make("report", "BASE=main")
    payload = storage.read_json(lab.repo.path / "reports" / "pr_report.json")
    markdown = (lab.repo.path / "reports" / "pr_report.md").read_text(encoding="utf-8")
    return best["name"], payload, markdown


def test_a_promoted_experiment_gets_a_normal_report_with_intervals(
    lab: Lab, promoted: tuple[str, dict[str, Any], str]
) -> None:
    name, payload, markdown = promoted
    assert payload["status"] in ("pass", "fail")
    assert payload["base"]["commit"] == lab.main
    row = next(r for r in lab.table["experiments"] if r["name"] == name)
    changed = {p["key"] for p in payload["params"]}
    assert changed, "the promoted branch changes params"
    assert all(c.split("=")[0] in {k.split(".")[-1] for k in changed} for c in row["changed"])
    assert "### Is the difference more than noise?" in markdown
    intervals = payload["uncertainty"]["intervals"]
    assert set(intervals) == set(row["vs_baseline"])
    for key, interval in intervals.items():
        # the same comparison as the table's (same models, test set, resamples and seed)
        assert interval["delta"] == pytest.approx(row["vs_baseline"][key]["delta"], abs=1e-9)
        assert interval["verdict"] == row["vs_baseline"][key]["verdict"]
    assert "**In plain words:** Expected profit" in markdown
    assert "<b>Experiments</b>" not in markdown, "no experiment was run on this commit yet"


def test_the_report_lists_experiments_run_on_the_branch_commit(
    lab: Lab, promoted: tuple[str, dict[str, Any], str]
) -> None:
    lab.repo.dvc("exp", "run", "--temp", "--name", "probe", "-S", f"{LR}=0.3")
    lab.repo.make("report", "BASE=main")
    markdown = (lab.repo.path / "reports" / "pr_report.md").read_text(encoding="utf-8")
    payload = storage.read_json(lab.repo.path / "reports" / "pr_report.json")
    assert "<b>Experiments</b>: 1 run on this branch's commit" in markdown
    assert "| `probe` | learning_rate=0.3 |" in markdown
    [probe] = payload["experiments"]
    assert probe["name"] == "probe"
    assert probe["params"] == ["learning_rate=0.3"]


def test_the_opt_in_gate_needs_an_improvement_beyond_noise(lab: Lab) -> None:
    """A branch whose model is main's (it changes only the example request) passes the gate's
    tolerances, and fails them once `gate.require_significant_improvement` is on."""
    repo = lab.repo
    repo.run("git", "checkout", "-q", "-B", "same-model", "main")
    repo.dvc("checkout", "--quiet")
    repo.set_params({"example.seed": 8})
    repo.dvc("repro", "--quiet")
    repo.commit("same-model: another example request")
    assert repo.make("gate", "BASE=main").returncode == 0
    repo.set_params({"gate.require_significant_improvement": True})
    proc = repo.make("gate", "BASE=main", check=False)
    assert proc.returncode != 0
    assert "gate.require_significant_improvement: Expected profit +0" in proc.stderr
    assert "within test-set noise" in proc.stderr


def _stages(root: Path, stage: str) -> list[psutil.Process]:
    """Running processes of `stage` in a queued experiment's temp copy of `root`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        inside = (proc.info["cwd"] or "").startswith(str(root / ".dvc" / "tmp" / "exps"))
        running = proc.info["status"] != psutil.STATUS_ZOMBIE
        if f"pipeline.{stage}" in cmdline and inside and running:
            found.append(proc)
    return found


def test_a_queued_experiment_outlives_the_command_that_started_the_queue(lab: Lab) -> None:
    """DVC keeps a queue worker running when `dvc exp run --run-all` stops following it
    (Ctrl-C, a closed terminal, a CI timeout of the `make` above it); its stages must not
    stop themselves then (core/stopping.py `owners`)."""
    repo = lab.repo
    repo.dvc("exp", "run", "--queue", "--name", "outlives", "-S",
             "model.hist_gradient_boosting.max_iter=400")  # fmt: skip
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(repo.path / "src"), "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    follower = subprocess.Popen(
        [sys.executable, "-m", "dvc", "exp", "run", "--run-all"], cwd=repo.path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not _stages(repo.path, "train") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _stages(repo.path, "train"), "the queued experiment's train stage never started"
    follower.kill()  # that process only, mid-training: its queue worker goes on
    follower.wait(timeout=30)
    deadline = time.monotonic() + 600
    status = ""
    while time.monotonic() < deadline:
        status = next(
            (ln for ln in repo.dvc("queue", "status").stdout.splitlines() if " outlives " in ln),
            "",
        )
        if "Success" in status or "Failed" in status:
            break
        time.sleep(2)
    logs = repo.dvc("queue", "logs", "outlives").stdout
    assert "Success" in status, f"{status}\n{logs[-3000:]}"
    assert "stopped" not in logs
