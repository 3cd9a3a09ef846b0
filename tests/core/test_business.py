"""The decision in money: profit of a contact list, baselines, break-even, scorer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from mlops_template.core import business
from mlops_template.core.params import Business

pytestmark = pytest.mark.unit

# Each contacted positive is worth 0.5 x 100 = 50; each contact costs 10.
MONEY = Business(contact_cost=10.0, success_value=100.0, success_rate=0.5)


def test_contact_profit_counts_only_contacted_records() -> None:
    y = np.array([1, 0, 1, 0, 1])
    contact = np.array([1, 1, 0, 0, 1])
    # Two contacted positives (+50 - 10 each) and one contacted negative (-10).
    assert business.contact_profit(y, contact, MONEY) == pytest.approx(2 * 40 - 10)


def test_contact_profit_accepts_booleans_and_lists() -> None:
    assert business.contact_profit([1, 0], [True, False], MONEY) == pytest.approx(40.0)
    assert business.contact_profit([1, 0], [False, False], MONEY) == 0.0


def test_baselines_contact_all_and_none() -> None:
    y = np.array([1, 0, 0, 0])
    base = business.baselines(y, MONEY)
    assert base["contact_none"] == 0.0
    assert base["contact_all"] == pytest.approx(50.0 - 4 * 10.0)
    assert base["contact_all"] == pytest.approx(business.contact_profit(y, np.ones(4), MONEY))


def test_break_even_precision_is_where_profit_is_zero() -> None:
    precision = business.break_even_precision(MONEY)
    assert precision == pytest.approx(10.0 / 50.0)
    # Contacting 5 records of which exactly 1 is positive (precision 0.2) breaks even.
    y = np.array([1, 0, 0, 0, 0])
    assert business.contact_profit(y, np.ones(5), MONEY) == pytest.approx(0.0)


def test_expected_profit_is_the_profit_with_each_label_replaced_by_its_probability() -> None:
    p = np.array([0.9, 0.2, 0.05, 0.6])
    contact = np.array([True, False, False, True])
    expected = business.expected_profit(float(p[contact].sum()), int(contact.sum()), MONEY)
    # 1.5 expected positives x 50 - 2 contacts x 10.
    assert expected == pytest.approx(1.5 * 50 - 2 * 10)
    assert expected == pytest.approx(business.contact_profit(p, contact, MONEY))
    assert business.expected_profit(0.0, 0, MONEY) == 0.0


def test_profit_scorer_scores_the_predicted_contacts() -> None:
    features = np.zeros((6, 1))
    y = np.array([1, 1, 0, 0, 0, 0])
    scorer = business.profit_scorer(MONEY)
    always = DummyClassifier(strategy="constant", constant=1).fit(features, y)
    never = DummyClassifier(strategy="constant", constant=0).fit(features, y)
    assert scorer(always, features, y) == pytest.approx(business.baselines(y, MONEY)["contact_all"])
    assert scorer(never, features, y) == 0.0


def test_profit_scorer_holds_plain_numbers_not_the_params_object() -> None:
    # A pickled pydantic model is not byte-stable across processes; the model file must be.
    blob = pickle.dumps(business.profit_scorer(MONEY))
    assert b"pydantic" not in blob
    assert b"Business" not in blob
