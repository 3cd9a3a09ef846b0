"""The audit pack: its pure pieces on hand-made inputs, then `make audit` in the throwaway
registry (conftest.py): an older version regenerated from git + the DVC remote alone (the
local cache and the work tree's outputs removed first), every hash checked against that
version's dvc.lock, the Markdown's mermaid charts and the HTML rendered in headless Chromium,
the work tree's pack, and the pack carried in the bento.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlops_template.core import io as files
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.governance import audit, pack
from tests.governance.conftest import Registry
from tests.support import (
    ROOT,
    chromium_path,
    mermaid_blocks,
    raw_params,
    render_mermaid,
    require,
    require_tool,
)

MD5 = re.compile(r"\b[0-9a-f]{32}\b")

# --- pure pieces -------------------------------------------------------------------------------


@pytest.mark.unit
def test_the_team_file_is_read_by_section() -> None:
    text = (ROOT / raw_params()["audit"]["intended_use"]).read_text(encoding="utf-8")
    sections = pack.team_sections(text)
    assert set(pack.TEAM_SECTIONS) <= set(sections), "the template's file has every section"
    assert all(sections[name] for name in pack.TEAM_SECTIONS)
    assert pack.team_sections("# t\nintro\n## A\none\n### sub\ntwo\n## B\n") == {
        "A": "one\n### sub\ntwo",
        "B": "",
    }


@pytest.mark.unit
def test_representative_decisions_straddle_the_threshold() -> None:
    proba = np.array([0.1, 0.9, 0.45, 0.55, 0.3, 0.7])
    picks = audit.representative(proba, threshold=0.5, n=4)
    assert picks == [
        (1, "the highest score"),
        (3, "the lowest score still contacted"),
        (2, "the highest score not contacted"),
        (0, "the lowest score"),
    ]
    assert len(audit.representative(proba, 0.5, 6)) == 6
    assert len({i for i, _ in audit.representative(proba, 0.5, 6)}) == 6, "no record twice"


@pytest.mark.unit
def test_calibration_bands() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    proba = np.array([0.05, 0.15, 0.15, 0.95, 1.0, 0.0])
    bands = audit.calibration(y, proba, 10)
    assert [(b.low, b.n) for b in bands] == [(0.0, 2), (0.1, 2), (0.9, 2)]
    assert bands[1].observed == 0.5
    assert bands[2].mean_predicted == pytest.approx(0.975)


@pytest.mark.unit
def test_an_older_params_file_is_read_with_todays_code(params: Params) -> None:
    today = raw_params()
    then = {k: v for k, v in raw_params().items() if k not in ("audit", "registry")}
    then["gate"]["floors"] = {"ml.roc_auc": 0.6}  # a mapping is the version's, whole
    then["retired"] = {"knob": 1}
    merged, missing = audit.version_params(today, then)
    assert missing == ["registry", "audit"]
    assert merged.gate.floors == {"ml.roc_auc": 0.6}
    assert merged.audit == params.audit


# --- the real pack -----------------------------------------------------------------------------

GOVERNANCE = pytest.mark.governance


def _outputs(lock: dict[str, Any]) -> set[str]:
    return {
        str(o["md5"]).removesuffix(".dir")
        for stage in lock["stages"].values()
        for o in stage.get("outs", [])
    }


def open_page(html: Path, screenshot: Path | None = None) -> dict[str, Any]:
    node = require_tool("node")
    chromium = chromium_path()
    require(
        (ROOT / "tests" / "js" / "node_modules" / "playwright-core").is_dir(),
        "tests/js has no node_modules: run `make js-deps`",
    )
    done = subprocess.run(
        [node, str(Path(__file__).with_name("open_page.mjs")), str(html),
         *([str(screenshot)] if screenshot else [])],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "CHROMIUM_PATH": chromium},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def older_pack(registry_repo: Registry) -> dict[str, Any]:
    """`make audit VERSION=v1.1.0` with no DVC cache and no pipeline outputs in the work tree:
    everything DVC-tracked comes from the remote."""
    path = registry_repo.path
    shutil.rmtree(path / ".dvc" / "cache")
    for rel in ("models", "data/processed", "data/interim", "reports/plots"):
        shutil.rmtree(path / rel, ignore_errors=True)
    try:
        registry_repo.copy.make("audit", "VERSION=v1.1.0")
    finally:
        registry_repo.copy.dvc("pull", "--quiet")  # the other tests' work tree
    out = path / "build" / "audit" / "v1.1.0"
    return {
        "md": (out / "audit.md").read_text(encoding="utf-8"),
        "html": out / "audit.html",
        "json": json.loads((out / "audit.json").read_text(encoding="utf-8")),
    }


def _at(repo: Registry, commit: str, rel: str) -> str:
    return repo.copy.run("git", "show", f"{commit}:{rel}").stdout


@GOVERNANCE
def test_an_older_version_is_rebuilt_from_git_and_the_remote_with_its_own_hashes(
    registry_repo: Registry, older_pack: dict[str, Any]
) -> None:
    commit = registry_repo.commits["B"]
    lock_text = _at(registry_repo, commit, "dvc.lock")
    lock = yaml.safe_load(lock_text)
    in_lock = set(MD5.findall(lock_text))
    for name in ("md", "json"):
        text = older_pack[name] if name == "md" else json.dumps(older_pack["json"])
        found = set(MD5.findall(text))
        assert found <= in_lock, f"audit.{name} holds md5s that are not v1.1.0's: {found - in_lock}"
        assert _outputs(lock) <= found, f"audit.{name} misses outputs {_outputs(lock) - found}"
    html_hashes = set(MD5.findall(older_pack["html"].read_text(encoding="utf-8")))
    assert _outputs(lock) <= html_hashes <= in_lock
    facts = older_pack["json"]
    assert facts["commit"] == commit
    assert facts["dvc_lock_sha256"] == files.sha256_bytes(lock_text.encode("utf-8"))
    assert facts["metrics"] == json.loads(_at(registry_repo, commit, "reports/metrics.json"))
    model_md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"]
                     if o["path"] == "models/model.joblib")  # fmt: skip
    assert f"`models/model.joblib` | `{model_md5}`" in older_pack["md"]
    import dvc.api

    model = dvc.api.read("models/model.joblib", repo=str(registry_repo.path), rev=commit,
                         mode="rb")  # fmt: skip
    assert facts["model"]["sha256"] == files.sha256_bytes(model), "the model of that commit"
    assert [p["stage"] for p in facts["registry"]["periods"]] == ["staging", "prod"]


@GOVERNANCE
def test_the_pack_answers_each_section(registry_repo: Registry, older_pack: dict[str, Any]) -> None:
    md, facts = older_pack["md"], older_pack["json"]
    headings = re.findall(r"^## (.+)$", md, re.M)
    assert headings == [
        "1. Identity", "2. Intended use and limits", "3. Data lineage and governance",
        "4. Performance", "5. Explanations", "6. Comparison with the previous production version",
        "7. Monitoring", "8. Environment",
    ]  # fmt: skip
    assert "model#prod#3" in md, "the stage history names its tags"
    team = pack.team_sections(
        _at(registry_repo, registry_repo.commits["B"], "docs/intended_use.md")
    )
    assert team[pack.LIMITS].splitlines()[0] in md, "the team's own words, from that commit"
    assert facts["previous"]["version"] == "v1.0.0", "v1.0.0 held prod before v1.1.0"
    assert "`model.hist_gradient_boosting.learning_rate`" in md, "what changed against it"
    assert facts["data"]["excluded"] == [c.name for c in TABLE.columns if not c.is_feature]
    assert len(facts["explanations"]["decisions"]) == raw_params()["audit"]["explanations"]
    for decision in facts["explanations"]["decisions"]:
        total = decision["base_value"] + sum(c["contribution"] for c in decision["contributions"])
        p = decision["probability"]
        assert total == pytest.approx(np.log(p / (1 - p)), abs=1e-6), "additive to the log-odds"
    assert facts["calibration"], "calibration from the model and the test set"
    assert "runtime packages" in md.lower()
    assert "bentoml" in facts["environment"]["packages"]


@GOVERNANCE
def test_the_markdown_charts_render_with_mermaid(
    older_pack: dict[str, Any], tmp_path: Path
) -> None:
    diagrams = mermaid_blocks(older_pack["md"])
    assert len(diagrams) >= 3, "calibration, importance, ROC against the previous version"
    results = render_mermaid(diagrams, tmp_path)
    assert all(r["ok"] for r in results), [r["error"] for r in results if not r["ok"]]


@GOVERNANCE
def test_the_html_opens_in_chromium_without_errors_or_requests(
    older_pack: dict[str, Any], tmp_path: Path
) -> None:
    # AUDIT_SCREENSHOT=docs/audit_pack.png regenerates the README's screenshot.
    screenshot = Path(os.environ.get("AUDIT_SCREENSHOT") or tmp_path / "audit.png")
    page = open_page(older_pack["html"], screenshot)
    assert screenshot.stat().st_size > 10_000, "the screenshot shows the page"
    assert page["console"] == [], page["console"]
    assert page["pageErrors"] == [], page["pageErrors"]
    assert page["requests"] == [], "self-contained: nothing is fetched"
    assert page["scripts"] == 0
    assert len(page["h2"]) == 8
    assert page["svgs"] == len(mermaid_blocks(older_pack["md"])), "every chart drawn"
    assert page["brokenAnchors"] == [], "the contents link to the sections"


@GOVERNANCE
def test_the_work_tree_pack_goes_into_the_bento(registry_repo: Registry, tmp_path: Path) -> None:
    copy = registry_repo.copy
    copy.make("audit")
    out = registry_repo.path / "build" / "audit" / "work-tree"
    facts = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert facts["version"] == "v1.1.1", "the work tree's commit is registered"
    assert facts["previous"]["version"] == "v1.0.0"
    copy.make("bento", BENTOML_HOME=str(tmp_path / "bentoml_home"))
    with tarfile.open(registry_repo.path / "build" / "bento.bento") as tar:
        names = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for name in ("audit.md", "audit.html"):
            member = next(n for n in names if n.endswith(f"bento_files/{name}"))
            extracted = tar.extractfile(names[member])
            assert extracted is not None
            assert extracted.read() == (out / name).read_bytes(), f"{name} carried as made"


@GOVERNANCE
def test_an_unregistered_version_is_refused(registry_repo: Registry) -> None:
    done = registry_repo.copy.make("audit", "VERSION=v9.9.9", check=False)
    assert done.returncode != 0
    assert "VERSION='v9.9.9' is not a registered version" in done.stderr, done.stderr
    assert "v1.1.1, v1.1.0, v1.0.0" in done.stderr
