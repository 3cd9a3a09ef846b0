"""Fast checks of the comparison core, the regression gate and the pull-request workflow."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from conftest import ROOT, raw_params, set_dotted
from mlops_template import catalog, compare, gate
from mlops_template.params import Params, ParamsError, parse_params

pytestmark = pytest.mark.unit


def _metrics(roc_auc: float = 0.8, brier: float = 0.15, profit: float = 1000.0) -> dict[str, Any]:
    return {
        "n_test": 100,
        "threshold": 0.2,
        "business": {
            "expected_profit": profit,
            "profit_vs_contact_all": 10.0,
            "profit_vs_contact_none": profit,
            "profit_contact_all": profit - 10.0,
        },
        "ml": {"roc_auc": roc_auc, "pr_auc": 0.6, "recall": 0.7, "brier": brier},
        "segments": {
            "region": {"north": {"n": 50, "roc_auc": roc_auc, "profit_per_customer": 1.0}}
        },
    }


def _gate(**changes: Any) -> Params:
    return parse_params(set_dotted(raw_params(), changes))


def test_markers_are_direction_aware() -> None:
    assert compare.marker("higher", 0.01) == "better"
    assert compare.marker("higher", -0.01) == "worse"
    assert compare.marker("lower", 0.01) == "worse"  # a higher Brier score is worse
    assert compare.marker("lower", -0.01) == "better"
    assert compare.marker("neutral", 0.01) == "changed"
    assert compare.marker("higher", 0.0) == "unchanged"
    assert catalog.BY_KEY["ml.brier"].direction == "lower"
    assert catalog.BY_KEY["ml.log_loss"].direction == "lower"


def test_metric_rows_deltas_and_order() -> None:
    rows = compare.metric_rows(_metrics(0.80, 0.15, 1000.0), _metrics(0.78, 0.14, 1100.0))
    by_key = {r.key: r for r in rows}
    assert rows[0].key == "business.expected_profit"
    assert rows[-1].key == "threshold"
    assert by_key["ml.roc_auc"].delta == pytest.approx(-0.02)
    assert by_key["ml.roc_auc"].marker == "worse"
    assert by_key["ml.brier"].marker == "better"
    assert by_key["business.expected_profit"].relative == pytest.approx(0.1)
    assert by_key["ml.log_loss"].base is None  # missing on both sides: shown as "—"
    assert catalog.BY_KEY["ml.log_loss"].show(None) == "—"
    assert catalog.BY_KEY["business.contact_rate"].show_delta(0.012) == "+1.20 pp"
    assert catalog.BY_KEY["business.expected_profit"].show_delta(-1234.4) == "-1,234"


def test_params_diff_lists_only_changed_keys() -> None:
    base = {"model": {"lr": 0.1, "depth": 3}, "segments": ["a", "b"], "gone": 1}
    branch = copy.deepcopy(base)
    branch["model"]["lr"] = 0.2
    branch["segments"] = ["a"]
    del branch["gone"]
    branch["new"] = {"x": 1}
    changes = {(c.key, str(c.base), str(c.branch)) for c in compare.params_diff(base, branch)}
    assert changes == {
        ("model.lr", "0.1", "0.2"),
        ("segments", "['a', 'b']", "['a']"),
        ("gone", "1", compare.ABSENT),
        ("new.x", compare.ABSENT, "1"),
    }
    assert compare.params_diff(base, copy.deepcopy(base)) == []


def test_regression_tolerances_absolute_relative_and_direction() -> None:
    params = _gate()
    cfg = params.gate
    base = _metrics(0.80, 0.150, 1000.0)
    tol_auc = cfg.max_regression["ml.roc_auc"].absolute
    assert tol_auc is not None
    # Within every tolerance (and an improvement) passes.
    assert gate.check_regressions(base, _metrics(0.80 - tol_auc / 2, 0.150, 1000.0), cfg) == []
    assert gate.check_regressions(base, _metrics(0.90, 0.100, 2000.0), cfg) == []
    # Beyond the absolute ROC AUC tolerance: one miss naming metric, values and the limit.
    misses = gate.check_regressions(base, _metrics(0.80 - 2 * tol_auc, 0.150, 1000.0), cfg, "main")
    auc = [m for m in misses if m.startswith("ml.roc_auc")]
    assert len(auc) == 1
    assert "0.8000 on main" in auc[0]
    assert f"allowed: {tol_auc:.4f}" in auc[0]
    # The segment fell by the same amount: flagged when beyond the segment tolerance.
    seg_drop = 2 * tol_auc > cfg.max_segment_roc_auc_drop
    assert any(m.startswith("segment region=north") for m in misses) == seg_drop
    # A Brier score that rises (lower is better) beyond tolerance is a miss.
    tol_brier = cfg.max_regression["ml.brier"].absolute
    assert tol_brier is not None
    worse_brier = _metrics(0.80, 0.150 + 2 * tol_brier, 1000.0)
    assert any(
        m.startswith("ml.brier got worse") for m in gate.check_regressions(base, worse_brier, cfg)
    )
    # A relative profit tolerance scales with the base value.
    rel = cfg.max_regression["business.expected_profit"].relative
    assert rel is not None
    assert gate.check_regressions(base, _metrics(0.80, 0.15, 1000.0 * (1 - rel / 2)), cfg) == []
    lost = gate.check_regressions(base, _metrics(0.80, 0.15, 1000.0 * (1 - 2 * rel)), cfg)
    assert any(m.startswith("business.expected_profit got worse") and "%" in m for m in lost)


def test_tolerance_params_are_validated() -> None:
    with pytest.raises(ParamsError, match="exactly one of 'absolute' or 'relative'"):
        _gate(**{"gate.max_regression": {"ml.roc_auc": {"absolute": 0.1, "relative": 0.1}}})
    with pytest.raises(ParamsError, match="exactly one of 'absolute' or 'relative'"):
        _gate(**{"gate.max_regression": {"ml.roc_auc": {}}})
    with pytest.raises(ParamsError, match=r"ml\.roc_acu.*allowed: .*ml\.roc_auc"):
        _gate(**{"gate.max_regression": {"ml.roc_acu": {"absolute": 0.1}}})
    with pytest.raises(ParamsError, match=r"ml\.positive_rate"):  # no better direction
        _gate(**{"gate.max_regression": {"ml.positive_rate": {"absolute": 0.1}}})


def test_resampled_roc_is_monotone_on_a_fixed_grid() -> None:
    roc = [(0.0, 0.0), (0.1, 0.5), (0.1, 0.6), (0.5, 0.9), (1.0, 1.0)]
    values = compare.resample_roc(roc, 11)
    assert len(values) == 11
    assert values[0] == 0.0
    assert values[-1] == 1.0
    assert values == sorted(values)
    assert values[5] == pytest.approx(0.9)


# --- the pull-request workflow ---------------------------------------------------------------

PR_YML = ROOT / ".github" / "workflows" / "pr.yml"


def _workflow() -> dict[str, Any]:
    doc = yaml.safe_load(PR_YML.read_text(encoding="utf-8"))
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc  # type: ignore[no-any-return]


def test_pr_workflow_is_fork_safe_and_split_by_permission() -> None:
    code = "\n".join(
        line
        for line in PR_YML.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    )
    doc = _workflow()
    assert list(doc["on"]) == ["pull_request"]
    assert "pull_request_target" not in code
    assert "workflow_run" not in code
    report, comment = doc["jobs"]["report"], doc["jobs"]["comment"]
    assert report["permissions"] == {"contents": "read"}
    assert comment["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert comment["needs"] == "report"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in comment["if"]
    for job in (report, comment):
        for step in job["steps"]:
            assert "github.event" not in str(step.get("run", "")), step
    runs = [s["run"] for s in report["steps"] if "run" in s]
    assert runs == ["make repro", "make report", "make gate", "make check-lock"]
    assert report["env"]["BASE"] == "HEAD^1"
    checkout = report["steps"][0]
    assert checkout["with"]["fetch-depth"] == 2  # the merge commit and its base parent
    cache = next(s for s in report["steps"] if str(s.get("uses", "")).startswith("actions/cache@"))
    assert cache["with"]["path"] == ".dvc/cache"
    assert "hashFiles('dvc.lock')" in cache["with"]["key"]
    cml = next(s for s in comment["steps"] if "setup-cml@" in str(s.get("uses", "")))
    assert re.fullmatch(r"iterative/setup-cml@[0-9a-f]{40}", cml["uses"])
    assert [s["run"] for s in comment["steps"] if "run" in s] == ["make pr-comment"]


def test_pr_comment_target_posts_one_sticky_comment_without_uploads(params: Params) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^PR_REPORT := {re.escape(params.paths.pr_report)}$", makefile, re.M)
    body = makefile.split("\npr-comment:", 1)[1].split("\n\n", 1)[0]
    assert "cml comment update $(PR_REPORT)" in body
    assert "--target=pr" in body
    assert "--watermark-title=" in body
    assert "--publish=false" in body
