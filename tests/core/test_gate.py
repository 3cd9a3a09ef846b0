"""The gate's rules on hand-made metrics and a hand-made `gate` config: every rule fires on
its own and names the metric; tolerances are absolute or relative and direction-aware."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from mlops_template.core import catalog, gate
from mlops_template.core import io as files
from mlops_template.core.params import Gate, Params
from mlops_template.review import gate as gate_cli
from tests.support import ROOT

pytestmark = pytest.mark.unit

GATE = Gate.model_validate(
    {
        "floors": {"ml.roc_auc": 0.7, "ml.pr_auc": 0.4, "ml.recall": 0.3, "ml.brier": 0.2},
        "must_beat_contact_all": True,
        "must_beat_contact_none": True,
        "max_segment_roc_auc_gap": {"area": 0.1},
        "max_regression": {
            "business.expected_profit": {"relative": 0.01},
            "ml.roc_auc": {"absolute": 0.005},
            "ml.brier": {"absolute": 0.005},
        },
        "max_segment_roc_auc_drop": 0.03,
        "on_schema_change": "floors_only",
    }
)


def _passing() -> dict[str, Any]:
    """Metrics that meet every rule with some room to spare."""
    return {
        "ml": {"roc_auc": 0.8, "pr_auc": 0.5, "recall": 0.5, "brier": 0.15},
        "business": {
            "expected_profit": 1000.0,
            "profit_contact_all": 400.0,
            "profit_vs_contact_all": 600.0,
            "profit_vs_contact_none": 1000.0,
        },
        "segments": {
            "area": {
                "north": {"n": 50, "roc_auc": 0.82, "profit_per_record": 1.0},
                "south": {"n": 50, "roc_auc": 0.78, "profit_per_record": 1.0},
            },
            "kind": {"a": {"n": 50, "roc_auc": 0.5, "profit_per_record": 0.1}},
        },
    }


def test_metrics_meeting_every_rule_pass() -> None:
    assert gate.check_floors(_passing(), GATE) == []


@pytest.mark.parametrize("key", list(GATE.floors))
def test_each_floor_fires_and_names_the_metric(key: str) -> None:
    metrics = _passing()
    section, name = key.split(".")
    lower_is_better = key == "ml.brier"
    metrics[section][name] = GATE.floors[key] + (0.01 if lower_is_better else -0.01)
    misses = gate.check_floors(metrics, GATE)
    assert len(misses) == 1, misses
    assert key in misses[0]
    assert ("above the ceiling" if lower_is_better else "below the floor") in misses[0]


def test_a_floor_on_a_missing_metric_is_a_miss() -> None:
    metrics = _passing()
    del metrics["ml"]["recall"]
    assert gate.check_floors(metrics, GATE) == ["ml.recall is missing from the metrics"]


@pytest.mark.parametrize(
    ("key", "named"),
    [("profit_vs_contact_all", "contacting everyone"), ("profit_vs_contact_none", "no one")],
)
def test_profit_must_beat_each_baseline(key: str, named: str) -> None:
    metrics = _passing()
    metrics["business"][key] = 0.0  # equal is not better
    misses = gate.check_floors(metrics, GATE)
    assert len(misses) == 1, misses
    assert "expected profit" in misses[0]
    assert named in misses[0]


def test_baseline_rules_can_be_switched_off() -> None:
    relaxed = GATE.model_copy(
        update={"must_beat_contact_all": False, "must_beat_contact_none": False}
    )
    metrics = _passing()
    metrics["business"]["profit_vs_contact_all"] = -5.0
    metrics["business"]["profit_vs_contact_none"] = -5.0
    assert gate.check_floors(metrics, relaxed) == []


def test_segment_gap_fires_names_the_segments_and_only_for_listed_columns() -> None:
    metrics = _passing()
    metrics["segments"]["area"] = {
        "north": {"roc_auc": 0.72}, "east": {"roc_auc": 0.61}, "south": {"roc_auc": 0.6},
    }  # fmt: skip
    [miss] = gate.check_floors(metrics, GATE)
    assert "segments of area" in miss
    assert "ROC AUC gap 0.1200" in miss
    assert "north" in miss
    assert "south" in miss
    metrics = _passing()
    metrics["segments"]["kind"] = {"a": {"roc_auc": 0.9}, "b": {"roc_auc": 0.5}}
    assert gate.check_floors(metrics, GATE) == [], "kind is reported, not guarded"


def _moved(roc_auc: float = 0.8, brier: float = 0.15, profit: float = 1000.0) -> dict[str, Any]:
    metrics = _passing()
    metrics["ml"].update(roc_auc=roc_auc, brier=brier)
    metrics["business"]["expected_profit"] = profit
    metrics["segments"]["area"]["north"]["roc_auc"] = roc_auc + 0.02
    return metrics


def test_regression_tolerances_absolute_relative_and_direction() -> None:
    base = _moved()
    assert gate.check_regressions(base, _moved(roc_auc=0.8 - 0.004), GATE) == []
    assert gate.check_regressions(base, _moved(0.9, 0.1, 2000.0), GATE) == [], "improvements"
    misses = gate.check_regressions(base, _moved(roc_auc=0.79), GATE, "main")
    [auc] = [m for m in misses if m.startswith("ml.roc_auc")]
    assert "0.8000 on main" in auc
    assert "allowed: 0.0050" in auc
    # A Brier score that rises (lower is better) beyond tolerance is a miss.
    assert any(m.startswith("ml.brier got worse") for m in
               gate.check_regressions(base, _moved(brier=0.16), GATE))  # fmt: skip
    # A relative profit tolerance scales with the base value.
    assert gate.check_regressions(base, _moved(profit=995.0), GATE) == []
    lost = gate.check_regressions(base, _moved(profit=980.0), GATE)
    assert any(m.startswith("business.expected_profit got worse") and "%" in m for m in lost)


def test_segment_drop_beyond_tolerance_is_a_miss_and_new_segments_are_not() -> None:
    base, branch = _passing(), _passing()
    branch["segments"]["area"]["north"]["roc_auc"] = 0.82 - 0.04
    branch["segments"]["area"]["west"] = {"n": 50, "roc_auc": 0.5, "profit_per_record": 0.0}
    [miss] = gate.check_regressions(base, branch, GATE, "main")
    assert miss.startswith("segment area=north: ROC AUC fell by 0.0400")
    drops = {(d.column, d.value): d for d in gate.segment_drops(base, branch)}
    assert drops["area", "north"].beyond(GATE)
    assert not drops["area", "south"].beyond(GATE)
    assert ("area", "west") not in drops


def test_a_base_without_a_metric_has_nothing_to_regress_from() -> None:
    base = _passing()
    del base["ml"]["brier"]
    assert gate.check_regressions(base, _passing(), GATE) == []
    branch = _passing()
    del branch["ml"]["brier"]
    assert gate.check_regressions(_passing(), branch, GATE) == [
        "ml.brier is missing from this branch's metrics"
    ]


def test_gate_command_exit_codes(
    tmp_path: Path, params: Params, caplog: pytest.LogCaptureFixture
) -> None:
    # The committed metrics, made to meet params.yaml's own gate with room to spare.
    metrics = files.read_json(ROOT / params.paths.metrics)
    metrics["segments"] = {}
    metrics["business"].update(profit_vs_contact_all=1.0, profit_vs_contact_none=1.0)
    for key, bound in params.gate.floors.items():
        section, name = key.split(".")
        higher = catalog.BY_KEY[key].direction == "higher"
        metrics[section][name] = bound + 0.01 if higher else bound - 0.01
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    files.write_json(good, metrics)
    key, bound = next(iter(params.gate.floors.items()))
    failing = copy.deepcopy(metrics)
    section, name = key.split(".")
    higher = catalog.BY_KEY[key].direction == "higher"
    failing[section][name] = bound - 0.01 if higher else bound + 0.01
    files.write_json(bad, failing)
    params_file = str(ROOT / "params.yaml")
    assert gate_cli.main(["--params", params_file, "--metrics", str(good)]) == 0
    with caplog.at_level(logging.ERROR):
        assert gate_cli.main(["--params", params_file, "--metrics", str(bad)]) == 1
    assert key in caplog.text
