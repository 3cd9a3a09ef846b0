"""`make retrain`'s promotion rule (`monitoring.retrain.compare`) on tiny hand-made scores:
a challenger is promoted only if it earns more than the champion on the same fresh records
and passes the gate; a floor both miss blocks only with `shared_floor_misses: block`; with
`gate.require_significant_improvement` the gain must also be beyond the noise of the records.

The two models are scripted (fixed probabilities for the fresh rows); everything else is the
real code: `core.metrics.score_metrics`, `core.gate`, the paired Poisson bootstrap."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.metrics import decide
from mlops_template.core.model import LoadedModel
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table
from mlops_template.monitoring import retrain
from mlops_template.monitoring.performance import Interval
from tests.support import params_with

pytestmark = pytest.mark.unit

THRESHOLD = 0.5
Y = np.array([1] * 20 + [0] * 60)  # 80 fresh records, 20 of them positive

# Money and bootstrap fixed here, so that the numbers below do not move with params.yaml:
# a contacted positive is worth 0.3 x 200 = 60, every contact costs 10.
BASE = {
    "business.contact_cost": 10.0,
    "business.success_value": 200.0,
    "business.success_rate": 0.3,
    "monitor.performance.bootstrap": 500,
    "monitor.performance.confidence": 0.99,
    "monitor.performance.seed": 7,
    "monitor.retrain.shared_floor_misses": "warn",
    "gate.require_significant_improvement": False,
}
# The gate as shipped, in shape: floors, both baselines, regression tolerances.
FULL_GATE = {
    "gate.floors": {"ml.roc_auc": 0.75, "ml.pr_auc": 0.45, "ml.recall": 0.3},
    "gate.must_beat_contact_all": True,
    "gate.must_beat_contact_none": True,
    "gate.max_segment_roc_auc_gap": {},
    "gate.max_regression": {
        "business.expected_profit": {"relative": 0.01},
        "ml.roc_auc": {"absolute": 0.005},
        "ml.pr_auc": {"absolute": 0.01},
        "ml.brier": {"absolute": 0.005},
    },
    "gate.max_segment_roc_auc_drop": 0.03,
}
# No gate rule at all: only the rule a test turns on can keep the champion.
NO_GATE = {
    **FULL_GATE,
    "gate.floors": {},
    "gate.must_beat_contact_all": False,
    "gate.must_beat_contact_none": False,
    "gate.max_regression": {},
}


def _params(*changes: dict[str, Any]) -> Params:
    merged: dict[str, Any] = dict(BASE)
    for c in changes:
        merged.update(c)
    return params_with(merged)


def _scores(missed: int, false_alarms: int) -> np.ndarray:
    """Positives at 0.9 but the first `missed` at 0.4 (not contacted); negatives at 0.1 but
    the first `false_alarms` at 0.6 (contacted)."""
    p = np.where(Y == 1, 0.9, 0.1)
    p[np.flatnonzero(Y == 1)[:missed]] = 0.4
    p[np.flatnonzero(Y == 0)[:false_alarms]] = 0.6
    return p


# expected profit on the fresh records: contacted positives x 60 - contacts x 10
PERFECT = _scores(0, 0)  # 20 x 60 - 20 x 10 = 1,000; recall 1.0
BETTER = _scores(4, 2)  # 16 x 60 - 18 x 10 = 780; recall 0.8
GOOD = _scores(8, 4)  # 12 x 60 - 16 x 10 = 560; recall 0.6, ROC AUC 0.973
GOOD_PLUS_ONE = _scores(7, 4)  # GOOD with one more positive contacted: 610, +50 on 1 record


@dataclass(frozen=True)
class Scripted:
    """Stands in for a LoadedModel: the same probabilities whatever the rows hold."""

    version: str
    proba: np.ndarray
    threshold: float = THRESHOLD
    table: Table = TABLE

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        assert len(frame) == len(self.proba), "scripted for the fresh rows only"
        return self.proba

    def decide(self, probability: np.ndarray) -> np.ndarray:
        return decide(probability, self.threshold)


def _model(version: str, proba: np.ndarray) -> LoadedModel:
    return cast(LoadedModel, Scripted(version, proba))


def _fresh(params: Params) -> pd.DataFrame:
    """The label and the segment columns (one value each: too small a group to be scored)."""
    label = TABLE.label
    frame = pd.DataFrame({label.name: [label.positive if v else label.negative for v in Y]})
    for column in params.evaluate.segments:
        frame[column] = "all"
    return frame


def _compare(
    params: Params,
    champion: np.ndarray,
    challenger: np.ndarray,
    challenger_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    fresh = _fresh(params)
    chall = _model("challenger", challenger)
    if challenger_metrics is None:  # its own test set = the fresh records (policy: sliding)
        challenger_metrics, _ = retrain.score(chall, fresh, params)
    return retrain.compare(_model("champion", champion), chall, fresh, challenger_metrics, params)


def test_the_hand_made_scores_are_what_the_tests_say() -> None:
    params = _params(NO_GATE)
    c = _compare(params, GOOD, PERFECT)
    champ, chall = c["champion"]["metrics"], c["challenger"]["metrics"]
    assert champ["business"]["expected_profit"] == 560.0, champ["business"]
    assert chall["business"]["expected_profit"] == 1000.0, chall["business"]
    assert champ["ml"]["recall"] == 0.6, champ["ml"]
    assert champ["ml"]["roc_auc"] == pytest.approx(1 - 8 * 4 / (20 * 60), abs=1e-6)
    assert c["profit_gain"] == 440.0


def test_a_better_challenger_that_passes_the_gate_is_promoted() -> None:
    c = _compare(_params(FULL_GATE), GOOD, BETTER)
    assert c["promoted"] is True, f"expected promotion, kept because: {c['why_not']}"
    assert c["why_not"] == []
    assert c["gate_misses"] == []
    assert c["profit_gain"] == 780.0 - 560.0


def test_a_worse_challenger_is_not_promoted() -> None:
    # no gate rule at all: only "it must earn more" can keep the champion
    c = _compare(_params(NO_GATE), BETTER, GOOD)
    assert c["promoted"] is False, "a challenger earning 560 replaced a champion earning 780"
    assert c["gate_misses"] == []
    assert c["why_not"] == ["the challenger does not earn more on the fresh records (-220)"]


def test_an_equal_challenger_is_not_promoted() -> None:
    c = _compare(_params(NO_GATE), GOOD, GOOD)
    assert c["promoted"] is False, "a challenger earning exactly as much is no improvement"
    assert c["why_not"] == ["the challenger does not earn more on the fresh records (+0)"]


def test_a_challenger_missing_a_floor_is_not_promoted() -> None:
    params = _params(FULL_GATE)
    fresh = _fresh(params)
    own, _ = retrain.score(_model("challenger", PERFECT), fresh, params)
    own = copy.deepcopy(own)
    # its own test set (policy append: not only the fresh records) is below the floor 0.3
    # that the champion meets on the fresh records (0.6): not a shared miss, so even `warn`
    # (BASE) blocks it
    own["ml"]["recall"] = 0.2
    c = _compare(params, GOOD, PERFECT, own)
    assert c["profit_gain"] > 0, "it does earn more on the fresh records"
    assert c["promoted"] is False, "a challenger below a gate floor was promoted"
    assert c["gate_misses"] == ["ml.recall = 0.2000 is below the floor 0.3000"], c["gate_misses"]
    assert c["shared_floor_misses"] == [], "the champion meets this floor: not a shared miss"


SHARED_RECALL_FLOOR = {**FULL_GATE, "gate.floors": {"ml.recall": 0.9}}  # GOOD 0.6, BETTER 0.8


def test_a_floor_both_miss_blocks_with_block() -> None:
    params = _params(SHARED_RECALL_FLOOR, {"monitor.retrain.shared_floor_misses": "block"})
    c = _compare(params, GOOD, BETTER)
    assert c["promoted"] is False, "shared_floor_misses: block let a floor miss through"
    assert c["gate_misses"] == ["ml.recall = 0.8000 is below the floor 0.9000"], c["gate_misses"]
    assert c["shared_floor_misses"] == []


def test_a_floor_both_miss_only_warns_with_warn() -> None:
    params = _params(SHARED_RECALL_FLOOR, {"monitor.retrain.shared_floor_misses": "warn"})
    c = _compare(params, GOOD, BETTER)
    assert c["promoted"] is True, f"warn kept the worse champion: {c['why_not']}"
    assert c["gate_misses"] == []
    [warning] = c["shared_floor_misses"]
    assert warning.startswith("ml.recall: the challenger (0.8000) and the champion"), warning
    assert "both miss the floor 0.9000" in warning


# --- gate.require_significant_improvement -------------------------------------------------

SIGNIFICANT = {"gate.require_significant_improvement": True}


def test_a_gain_within_noise_is_not_promoted_when_significance_is_required() -> None:
    # one more positive contacted out of 80 records: +50, but a resample without that record
    # shows no gain at all
    off = _compare(_params(NO_GATE), GOOD, GOOD_PLUS_ONE)
    assert off["promoted"] is True, f"without the flag it is promoted: {off['why_not']}"
    diff = off["profit_per_record_difference"]
    assert diff.value == pytest.approx(50 / 80)
    assert diff.low <= 0 < diff.high, diff

    on = _compare(_params(NO_GATE, SIGNIFICANT), GOOD, GOOD_PLUS_ONE)
    assert on["promoted"] is False, "a gain within the noise was promoted despite the flag"
    assert on["significance_required"] is True
    [why] = on["why_not"]
    assert why.startswith("gate.require_significant_improvement: the challenger's profit"), why
    assert "+0.625 per record" in why
    assert "99% paired interval" in why
    assert "not distinguishable from noise: the interval includes 0" in why


def test_a_clear_gain_is_promoted_when_significance_is_required() -> None:
    c = _compare(_params(FULL_GATE, SIGNIFICANT), GOOD, PERFECT)
    diff = c["profit_per_record_difference"]
    assert diff.low > 0, f"the interval should exclude 0 here: {diff}"
    assert c["promoted"] is True, f"a gain beyond noise was kept out: {c['why_not']}"
    assert c["why_not"] == []


def test_a_loss_beyond_noise_is_named_as_such() -> None:
    c = _compare(_params(NO_GATE, SIGNIFICANT), PERFECT, GOOD)
    assert c["promoted"] is False
    assert c["profit_per_record_difference"].high < 0
    assert c["why_not"][0].startswith("the challenger does not earn more"), c["why_not"]
    assert c["why_not"][1].startswith(
        "gate.require_significant_improvement: the challenger earns less on the fresh records"
    ), c["why_not"]


def test_no_interval_is_a_miss_when_significance_is_required() -> None:
    gate = _params(SIGNIFICANT).gate
    none = Interval(None, None, None)
    for difference in (None, none):
        [why] = retrain.significance_misses(difference, gate, 0.99)
        assert "no paired interval of the profit difference" in why, why
    assert retrain.significance_misses(None, _params().gate, 0.99) == [], "off: no rule"
