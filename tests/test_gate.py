"""The release gate: every rule in params `gate` fires on its own, naming the metric."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from mlops_template import gate, storage
from mlops_template.params import Params

pytestmark = pytest.mark.unit

MARGIN = 0.05


def _passing(params: Params) -> dict[str, Any]:
    """Metrics that meet every rule with some room to spare."""
    floors = params.gate.floors.model_dump()
    auc = min(floors["roc_auc"] + MARGIN, 0.99)
    half_gap = params.gate.max_segment_roc_auc_gap["region"] / 4
    return {
        "ml": {name: min(floor + MARGIN, 1.0) for name, floor in floors.items()},
        "business": {
            "expected_profit": 1000.0,
            "profit_contact_all": 400.0,
            "profit_vs_contact_all": 600.0,
            "profit_vs_contact_none": 1000.0,
        },
        "segments": {
            "region": {"north": {"roc_auc": auc + half_gap}, "south": {"roc_auc": auc - half_gap}},
            "contract": {"two_year": {"roc_auc": 0.5}},  # a lone group has no gap
        },
    }


def test_metrics_meeting_every_rule_pass(params: Params) -> None:
    assert gate.check_floors(_passing(params), params.gate) == []


@pytest.mark.parametrize("floor", ["roc_auc", "pr_auc", "recall"])
def test_each_floor_fires_and_names_the_metric(params: Params, floor: str) -> None:
    assert floor in params.gate.floors.model_dump(), f"floor {floor} no longer in params"
    metrics = _passing(params)
    metrics["ml"][floor] = params.gate.floors.model_dump()[floor] - 0.01
    misses = gate.check_floors(metrics, params.gate)
    assert len(misses) == 1, misses
    assert f"ml.{floor}" in misses[0]
    assert "below the floor" in misses[0]


def test_every_floor_in_params_is_checked(params: Params) -> None:
    for floor, value in params.gate.floors.model_dump().items():
        metrics = _passing(params)
        metrics["ml"][floor] = value - 0.01
        assert any(f"ml.{floor}" in m for m in gate.check_floors(metrics, params.gate)), floor


@pytest.mark.parametrize(
    ("key", "named"),
    [("profit_vs_contact_all", "contacting everyone"), ("profit_vs_contact_none", "no one")],
)
def test_profit_must_beat_each_baseline(params: Params, key: str, named: str) -> None:
    assert params.gate.must_beat_contact_all
    assert params.gate.must_beat_contact_none
    metrics = _passing(params)
    metrics["business"][key] = 0.0  # equal is not better
    misses = gate.check_floors(metrics, params.gate)
    assert len(misses) == 1, misses
    assert "expected profit" in misses[0]
    assert named in misses[0]


def test_baseline_rules_can_be_switched_off(params: Params) -> None:
    relaxed = params.gate.model_copy(
        update={"must_beat_contact_all": False, "must_beat_contact_none": False}
    )
    metrics = _passing(params)
    metrics["business"]["profit_vs_contact_all"] = -5.0
    metrics["business"]["profit_vs_contact_none"] = -5.0
    assert gate.check_floors(metrics, relaxed) == []


def test_segment_gap_fires_and_names_the_segments(params: Params) -> None:
    metrics = _passing(params)
    low = 0.6
    metrics["segments"]["region"] = {
        "north": {"roc_auc": low + params.gate.max_segment_roc_auc_gap["region"] + 0.02},
        "east": {"roc_auc": low + 0.01},
        "south": {"roc_auc": low},
    }
    misses = gate.check_floors(metrics, params.gate)
    assert len(misses) == 1, misses
    assert "segments of region" in misses[0]
    assert "ROC AUC gap" in misses[0]
    assert "north" in misses[0]
    assert "south" in misses[0]


def test_gate_command_exit_codes(
    tmp_path: Path, params: Params, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    storage.write_json(good, _passing(params))
    failing = copy.deepcopy(_passing(params))
    failing["ml"]["roc_auc"] = 0.5
    storage.write_json(bad, failing)
    params_file = str(ROOT / "params.yaml")
    assert gate.main(["--params", params_file, "--metrics", str(good)]) == 0
    with caplog.at_level(logging.ERROR):
        assert gate.main(["--params", params_file, "--metrics", str(bad)]) == 1
    assert "ml.roc_auc" in caplog.text


def test_segment_gap_is_checked_only_for_the_listed_columns(params: Params) -> None:
    metrics = _passing(params)
    unguarded = next(c for c in params.evaluate.segments
                     if c not in params.gate.max_segment_roc_auc_gap)  # fmt: skip
    metrics["segments"][unguarded] = {"a": {"roc_auc": 0.9}, "b": {"roc_auc": 0.5}}
    assert gate.check_floors(metrics, params.gate) == []
    guarded = params.gate.model_copy(update={"max_segment_roc_auc_gap": {unguarded: 0.1}})
    misses = gate.check_floors(metrics, guarded)
    assert len(misses) == 1
    assert f"segments of {unguarded}" in misses[0]
