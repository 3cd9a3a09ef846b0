"""What the evaluate stage logs through DVCLive, on hand-made scores: the profit at every
threshold (against a brute-force count) and the tuned threshold against the best in
hindsight."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_template.core import business
from mlops_template.core.params import Params
from mlops_template.pipeline import evaluate

pytestmark = pytest.mark.unit


def test_profit_by_threshold_is_the_profit_of_contacting_everyone_at_or_above_it(
    params: Params,
) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(int)
    proba = (0.6 * rng.random(500) + 0.3 * y).round(2)  # many ties
    curve = evaluate.profit_by_threshold(y, proba, params.business)
    assert len(curve) == len(np.unique(proba)) + 1
    assert curve["threshold"].is_monotonic_increasing
    for t, profit in zip(curve["threshold"], curve["expected_profit"], strict=True):
        assert profit == pytest.approx(business.contact_profit(y, proba >= t, params.business))
    assert curve["expected_profit"].iloc[-1] == 0.0, "above the top score no one is contacted"


def test_the_threshold_in_hindsight_is_the_best_on_the_curve(params: Params) -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.3).astype(int)
    proba = 0.5 * rng.random(400) + 0.4 * y
    curve = evaluate.profit_by_threshold(y, proba, params.business)
    tuned = 0.3
    profit = business.contact_profit(y, proba >= tuned, params.business)
    hindsight = evaluate.threshold_hindsight(curve, tuned, profit)
    assert hindsight["profit_at_best"] == pytest.approx(curve["expected_profit"].max())
    assert hindsight["regret"] == pytest.approx(hindsight["profit_at_best"] - profit, abs=1e-6)
    assert hindsight["regret"] >= 0
    exact = curve["threshold"].iloc[int(curve["expected_profit"].to_numpy().argmax())]
    assert hindsight["best_on_test"] == round(exact, 6)  # stored with 6 decimals
    best = business.contact_profit(y, proba >= exact, params.business)
    assert best == pytest.approx(hindsight["profit_at_best"], abs=1e-6)
