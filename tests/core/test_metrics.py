"""The metrics on hand-made labels, scores, contacts and segments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.core import business
from mlops_template.core.metrics import (
    business_metrics,
    confusion_counts,
    ml_metrics,
    roc_points,
    score_metrics,
    segment_is_scored,
    segment_metrics,
)
from mlops_template.core.params import Business, Evaluate

pytestmark = pytest.mark.unit

MONEY = Business(contact_cost=10.0, success_value=100.0, success_rate=0.5)


def _evaluate_cfg(**changes: object) -> Evaluate:
    base = {
        "segments": ("kind",),
        "min_segment_size": 4,
        "min_segment_class_count": 1,
        "calibration_bins": 10,
        "importance_repeats": 1,
        "importance_max_rows": 100,
        "curve_points": 50,
    }
    return Evaluate.model_construct(**{**base, **changes})  # not the team's schema: no checks


def test_business_metrics_against_both_baselines() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    contact = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    got = business_metrics(y, contact, MONEY)
    profit = business.contact_profit(y, contact, MONEY)  # 50 - 10 - 10 = 30
    contact_all = business.baselines(y, MONEY)["contact_all"]  # 2 x 50 - 10 x 10 = 0
    assert got["expected_profit"] == pytest.approx(30.0) == profit
    assert got["profit_per_record"] == pytest.approx(3.0)
    assert got["profit_contact_all"] == pytest.approx(contact_all)
    assert got["profit_contact_none"] == 0.0
    assert got["profit_vs_contact_all"] == pytest.approx(profit - contact_all)
    assert got["profit_vs_contact_none"] == pytest.approx(profit)
    assert got["contact_rate"] == pytest.approx(0.2)
    assert got["break_even_precision"] == pytest.approx(0.2)


def test_ml_metrics_at_the_threshold() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([0.1, 0.6, 0.4, 0.9])
    contact = proba >= 0.5
    got = ml_metrics(y, proba, contact)
    assert got["roc_auc"] == pytest.approx(0.75)
    assert got["precision"] == pytest.approx(0.5)
    assert got["recall"] == pytest.approx(0.5)
    assert got["positive_rate"] == pytest.approx(0.5)
    assert 0 < got["brier"] < 1


def test_segment_metrics_leave_out_small_and_single_class_groups() -> None:
    segments = pd.DataFrame({"kind": ["a"] * 6 + ["b"] * 3 + ["c"] * 5})
    y = np.array([*[1, 0, 1, 0, 1, 0], *[1, 0, 0], *[0, 0, 0, 0, 0]])
    proba = np.linspace(0.05, 0.95, len(y))
    contact = proba >= 0.5
    got = segment_metrics(segments, y, proba, contact, _evaluate_cfg(min_segment_size=4), MONEY)
    # b has only 3 rows (< 4); c has no positive, so no ROC AUC exists.
    assert set(got["kind"]) == {"a"}
    a = got["kind"]["a"]
    assert a["n"] == 6
    assert a["positive_rate"] == pytest.approx(0.5)
    assert a["profit_per_record"] == pytest.approx(
        business.contact_profit(y[:6], contact[:6], MONEY) / 6
    )


def test_a_segment_needs_enough_of_both_classes() -> None:
    cfg = _evaluate_cfg(min_segment_size=10, min_segment_class_count=3)
    assert segment_is_scored(np.array([1] * 3 + [0] * 7), cfg)
    assert not segment_is_scored(np.array([1] * 2 + [0] * 120), cfg), "2 positives: noise"
    assert not segment_is_scored(np.array([0] * 2 + [1] * 120), cfg), "2 negatives: noise"
    assert not segment_is_scored(np.array([1] * 4 + [0] * 5), cfg), "9 rows < 10"


def test_segment_metrics_min_size_is_inclusive() -> None:
    segments = pd.DataFrame({"kind": ["b"] * 3})
    y, proba = np.array([1, 0, 0]), np.array([0.9, 0.2, 0.1])
    kept = segment_metrics(
        segments, y, proba, proba > 0.5, _evaluate_cfg(min_segment_size=3), MONEY
    )
    dropped = segment_metrics(
        segments, y, proba, proba > 0.5, _evaluate_cfg(min_segment_size=4), MONEY
    )
    assert set(kept["kind"]) == {"b"}
    assert dropped["kind"] == {}


def test_score_metrics_decide_at_the_threshold_inclusively() -> None:
    y = np.array([1, 0, 1, 0])
    proba = np.array([0.5, 0.49, 0.8, 0.1])
    got = score_metrics(y, proba, 0.5, pd.DataFrame({"kind": ["a"] * 4}), _evaluate_cfg(), MONEY)
    assert got["n_test"] == 4
    assert got["threshold"] == 0.5
    assert got["business"]["contact_rate"] == pytest.approx(0.5)  # 0.5 and 0.8 are contacted
    assert got["ml"]["precision"] == pytest.approx(1.0)


def test_roc_points_and_confusion_counts() -> None:
    y = np.array([0, 0, 1, 1])
    points = roc_points(y, np.array([0.1, 0.4, 0.35, 0.8]))
    assert points[0] == (0.0, 0.0)
    assert points[-1] == (1.0, 1.0)
    assert confusion_counts([(1, 1), (1, 0), (0, 1), (0, 0), (0, 0)]) == {
        "tp": 1, "fn": 1, "fp": 1, "tn": 2,
    }  # fmt: skip
