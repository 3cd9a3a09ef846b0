"""Evaluation helpers on hand-made labels, contacts and segments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template import business, schema
from mlops_template.evaluate import business_metrics, ml_metrics, segment_metrics
from mlops_template.params import Business, Evaluate

pytestmark = pytest.mark.unit

MONEY = Business(contact_cost=10.0, retained_value=100.0, offer_success_rate=0.5)


def _evaluate_cfg(**changes: object) -> Evaluate:
    base = {
        "segments": ("contract",),
        "min_segment_size": 4,
        "calibration_bins": 10,
        "importance_repeats": 1,
        "importance_max_rows": 100,
        "curve_points": 50,
    }
    return Evaluate.model_validate({**base, **changes})


def test_business_metrics_against_both_baselines() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    contact = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    got = business_metrics(y, contact, MONEY)
    profit = business.contact_profit(y, contact, MONEY)  # 50 - 10 - 10 = 30
    contact_all = business.baselines(y, MONEY)["contact_all"]  # 2 x 50 - 10 x 10 = 0
    assert got["expected_profit"] == pytest.approx(30.0) == profit
    assert got["profit_per_customer"] == pytest.approx(3.0)
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
    test = pd.DataFrame(
        {
            "contract": ["month_to_month"] * 6 + ["one_year"] * 3 + ["two_year"] * 5,
            schema.LABEL: [*[1, 0, 1, 0, 1, 0], *[1, 0, 0], *[0, 0, 0, 0, 0]],
        }
    )
    proba = np.linspace(0.05, 0.95, len(test))
    contact = proba >= 0.5
    got = segment_metrics(test, proba, contact, _evaluate_cfg(min_segment_size=4), MONEY)
    # one_year has only 3 rows (< 4); two_year has no churner, so no ROC AUC exists.
    assert set(got["contract"]) == {"month_to_month"}
    mtm = got["contract"]["month_to_month"]
    assert mtm["n"] == 6
    assert mtm["positive_rate"] == pytest.approx(0.5)
    y, c = test[schema.LABEL].to_numpy()[:6], contact[:6]
    assert mtm["profit_per_customer"] == pytest.approx(business.contact_profit(y, c, MONEY) / 6)


def test_segment_metrics_min_size_is_inclusive() -> None:
    test = pd.DataFrame({"contract": ["one_year"] * 3, schema.LABEL: [1, 0, 0]})
    proba = np.array([0.9, 0.2, 0.1])
    kept = segment_metrics(test, proba, proba > 0.5, _evaluate_cfg(min_segment_size=3), MONEY)
    dropped = segment_metrics(test, proba, proba > 0.5, _evaluate_cfg(min_segment_size=4), MONEY)
    assert set(kept["contract"]) == {"one_year"}
    assert dropped["contract"] == {}
