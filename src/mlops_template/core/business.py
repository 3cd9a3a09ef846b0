"""The decision in money: whom to contact when each contact costs something.

Contacting a record costs `contact_cost`. If the record is positive, the contact succeeds
with probability `success_rate`, which is worth `success_value`; contacting a negative
record only costs. The baselines are contacting everyone and contacting no one (profit 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import make_scorer

from mlops_template.core.params import Business


def _profit(y_true: ArrayLike, contact: ArrayLike, *, contact_cost: float, gain: float) -> float:
    y = np.asarray(y_true, dtype=float)
    c = np.asarray(contact, dtype=float)
    return float(np.sum(c * (y * gain - contact_cost)))


def gain(business: Business) -> float:
    """Expected value of contacting one positive record."""
    return business.success_rate * business.success_value


def contact_profit(y_true: ArrayLike, contact: ArrayLike, business: Business) -> float:
    """Expected profit of contacting the records where `contact` is true."""
    return _profit(y_true, contact, contact_cost=business.contact_cost, gain=gain(business))


def baselines(y_true: ArrayLike, business: Business) -> dict[str, float]:
    """Profit of the two policies that need no model."""
    y = np.asarray(y_true)
    return {
        "contact_all": contact_profit(y, np.ones_like(y), business),
        "contact_none": 0.0,
    }


def expected_profit(probability_sum: float, contacts: int, business: Business) -> float:
    """Expected profit of `contacts` contacts whose records' probabilities of being positive sum
    to `probability_sum`: for records whose labels are not known yet (a campaign before it
    runs), each contact is expected to earn p x success_rate x success_value and costs
    contact_cost. Profit is linear in the labels, so this is `contact_profit` with each label
    replaced by its probability."""
    return gain(business) * probability_sum - business.contact_cost * contacts


def break_even_precision(business: Business) -> float:
    """Precision above which a contact pays for itself on average."""
    return business.contact_cost / gain(business)


def profit_scorer(business: Business) -> Any:
    """A scikit-learn scorer (greater is better) for threshold tuning.

    It holds plain floats, not the params object: pydantic models pickle a set of field
    names whose order changes between processes, which would break byte-identical models.
    """
    return make_scorer(_profit, contact_cost=business.contact_cost, gain=gain(business))
