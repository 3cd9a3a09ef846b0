"""The paired bootstrap of a model comparison (core/uncertainty.py), against answers known
in advance: scikit-learn's metrics on the resampled rows, a binomial count, identical models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from mlops_template.core import business, gate
from mlops_template.core import uncertainty as u
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params, Uncertainty
from tests.support import params_with

pytestmark = pytest.mark.unit


def _cfg(params: Params, **changes: Any) -> Uncertainty:
    return params.uncertainty.model_copy(update=changes)


def _data(
    n: int = 2000, seed: int = 0, decimals: int | None = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two informative, different scores; rounded (many scores tie) unless
    `decimals` is None (no two scores tie)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    a = 0.5 * rng.random(n) + 0.3 * y * rng.random(n)
    b = a + rng.normal(0, 0.04, n)
    if decimals is not None:
        a, b = np.clip(a, 0, 1).round(decimals), np.clip(b, 0, 1).round(decimals)
    return y, a, b


@pytest.mark.parametrize("decimals", [2, None], ids=["tied-scores", "distinct-scores"])
def test_point_metrics_are_scikit_learns(params: Params, decimals: int | None) -> None:
    y, a, _ = _data(decimals=decimals)
    got = u.point_metrics(y, u.Scores(a, 0.3), params.business)
    ties = len(np.unique(a)) < len(a) / 10
    assert ties == (decimals is not None), "the case must (not) have tied scores"
    assert got["ml.roc_auc"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert got["ml.pr_auc"] == pytest.approx(average_precision_score(y, a), abs=1e-12)
    assert got["ml.brier"] == pytest.approx(brier_score_loss(y, a), abs=1e-12)
    profit = business.contact_profit(y, a >= 0.3, params.business)
    assert got["business.expected_profit"] == pytest.approx(profit, abs=1e-9)


@pytest.mark.parametrize("decimals", [2, None], ids=["tied-scores", "distinct-scores"])
def test_every_resample_is_scored_like_scikit_learn_on_the_drawn_rows(
    params: Params, decimals: int | None
) -> None:
    y, a, _ = _data(800, decimals=decimals)
    counts = next(u.resample_counts(len(y), 6, seed=3))
    scored = u._Model(y.astype(float), u.Scores(a, 0.3), params.business).metrics(
        counts, u.COMPARED
    )
    for i, row in enumerate(counts.astype(int)):
        yy, aa = np.repeat(y, row), np.repeat(a, row)
        assert scored["ml.roc_auc"][i] == pytest.approx(roc_auc_score(yy, aa), abs=1e-12)
        assert scored["ml.pr_auc"][i] == pytest.approx(average_precision_score(yy, aa), abs=1e-12)
        assert scored["ml.brier"][i] == pytest.approx(brier_score_loss(yy, aa), abs=1e-12)
        profit = business.contact_profit(yy, aa >= 0.3, params.business)
        assert scored["business.expected_profit"][i] == pytest.approx(profit, abs=1e-9)


def test_resamples_draw_every_row_count_once_per_resample_and_are_seeded() -> None:
    chunks = list(u.resample_counts(50_000, 45, seed=1))
    assert len(chunks) > 1, "45 resamples of 50,000 rows must come in several chunks"
    counts = np.concatenate(chunks)
    assert counts.shape == (45, 50_000)
    assert (counts.sum(axis=1) == 50_000).all()
    again = np.concatenate(list(u.resample_counts(50_000, 45, seed=1)))
    other = np.concatenate(list(u.resample_counts(50_000, 45, seed=2)))
    assert (counts == again).all()
    assert (counts != other).any()


def test_identical_models_differ_by_exactly_zero_and_are_noise(params: Params) -> None:
    y, a, _ = _data()
    same = u.Scores(a, 0.3)
    copy = u.Scores(a.copy(), 0.3)
    result = u.paired_bootstrap(y, same, copy, params.business, params.uncertainty)
    for interval in result.intervals.values():
        assert (interval.delta, interval.low, interval.high) == (0.0, 0.0, 0.0)
        assert interval.verdict == "noise"
    assert not u.significantly_better(y, same, same, params.business, params.uncertainty)


def test_profit_interval_is_the_binomial_count_of_the_extra_contacts(params: Params) -> None:
    """The challenger contacts k more rows, all positive, each worth gain - cost: on a
    resample the profit difference is that worth times how often those k rows were drawn,
    a Binomial(n, k / n) count, whose quantiles are known."""
    n, k = 1000, 40
    y = np.zeros(n, dtype=int)
    y[:300] = 1
    base = np.where(np.arange(n) < 100, 0.9, 0.1)  # contacts rows 0..99 at threshold 0.5
    challenger = base.copy()
    challenger[100 : 100 + k] = 0.9  # also contacts 40 positives
    worth = business.gain(params.business) - params.business.contact_cost
    cfg = _cfg(params, resamples=20_000, confidence=0.95)
    result = u.paired_bootstrap(
        y, u.Scores(base, 0.5), u.Scores(challenger, 0.5), params.business, cfg,
        ("business.expected_profit",),
    )  # fmt: skip
    interval = result.intervals["business.expected_profit"]
    assert interval.delta == pytest.approx(k * worth)
    low, high = stats.binom.ppf([0.025, 0.975], n, k / n) * worth
    assert abs(interval.low - low) <= worth, (interval.low, low)
    assert abs(interval.high - high) <= worth, (interval.high, high)
    assert interval.verdict == "better"


def test_lower_is_better_for_brier(params: Params) -> None:
    y, a, _ = _data()
    sharper = np.clip(a + 0.15 * (y - a), 0, 1)  # every score moves towards its label
    result = u.paired_bootstrap(
        y, u.Scores(a, 0.3), u.Scores(sharper, 0.3), params.business, params.uncertainty
    )
    brier = result.intervals["ml.brier"]
    assert brier.delta < 0
    assert brier.high < 0
    assert brier.verdict == "better"
    assert result.intervals["ml.roc_auc"].verdict == "better"


def test_a_small_change_is_noise_and_a_large_one_is_not(params: Params) -> None:
    y, a, _ = _data(3000)
    rng = np.random.default_rng(5)
    jitter = np.clip(a + rng.normal(0, 0.01, len(a)), 0, 1)
    coin = rng.random(len(a))
    noise = u.paired_bootstrap(
        y, u.Scores(a, 0.3), u.Scores(jitter, 0.3), params.business, params.uncertainty
    )
    assert noise.intervals["ml.roc_auc"].verdict == "noise"
    clear = u.paired_bootstrap(
        y, u.Scores(coin, 0.3), u.Scores(a, 0.3), params.business, params.uncertainty
    )
    assert all(i.verdict == "better" for i in clear.intervals.values()), clear.intervals
    assert u.significantly_better(y, u.Scores(coin, 0.3), u.Scores(a, 0.3), params.business,
                                  params.uncertainty)  # fmt: skip
    assert not u.significantly_better(y, u.Scores(a, 0.3), u.Scores(coin, 0.3), params.business,
                                      params.uncertainty)  # fmt: skip


def test_several_challengers_share_the_resamples_of_one(params: Params) -> None:
    y, a, b = _data()
    c = np.clip(b + 0.05, 0, 1)
    cfg = _cfg(params, resamples=300)
    many = u.paired_bootstraps(
        y, u.Scores(a, 0.3), {"b": u.Scores(b, 0.3), "c": u.Scores(c, 0.35)}, params.business, cfg
    )
    for name, scores in (("b", u.Scores(b, 0.3)), ("c", u.Scores(c, 0.35))):
        alone = u.paired_bootstrap(y, u.Scores(a, 0.3), scores, params.business, cfg)
        assert many[name] == alone


def test_seeded_and_the_level_widens_the_interval(params: Params) -> None:
    y, a, b = _data()
    run = lambda **kw: u.paired_bootstrap(  # noqa: E731
        y, u.Scores(a, 0.3), u.Scores(b, 0.3), params.business, _cfg(params, **kw)
    ).intervals["ml.roc_auc"]
    assert run(seed=1) == run(seed=1)
    assert run(seed=1) != run(seed=2)
    narrow, wide = run(confidence=0.8), run(confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_resamples_with_one_label_value_are_left_out_and_counted(params: Params) -> None:
    y = np.zeros(30, dtype=int)
    y[0] = 1  # one positive: about a third of the resamples draw none
    a = np.linspace(0, 1, 30)
    result = u.paired_bootstrap(
        y, u.Scores(a, 0.5), u.Scores(a[::-1].copy(), 0.5), params.business, params.uncertainty
    )
    assert 0.2 * result.resamples < result.undefined < 0.5 * result.resamples
    assert np.isfinite(result.intervals["ml.roc_auc"].low)


@pytest.mark.parametrize(
    ("y", "proba", "match"),
    [
        (np.array([0, 1, 1]), np.array([0.1, 0.9]), "same 3 test rows"),
        (np.array([0, 2, 1]), np.array([0.1, 0.9, 0.5]), "labels of 0 and 1"),
        (np.array([]), np.array([]), "non-empty"),
        (np.array([1, 1, 1]), np.array([0.1, 0.9, 0.5]), "both label values"),
    ],
)
def test_bad_inputs_are_named(params: Params, y: np.ndarray, proba: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        u.paired_bootstrap(
            y, u.Scores(proba, 0.5), u.Scores(proba, 0.5), params.business, params.uncertainty
        )


def test_unknown_metric_is_refused(params: Params) -> None:
    y, a, _ = _data(100)
    with pytest.raises(InputError, match=r"ml\.f1"):
        u.paired_bootstrap(
            y, u.Scores(a, 0.3), u.Scores(a, 0.3), params.business, params.uncertainty, ("ml.f1",)
        )


def test_words_say_which_side_of_zero(params: Params) -> None:
    better = u.Interval("business.expected_profit", 910.0, 120.0, 1700.0)
    noise = u.Interval("business.expected_profit", 910.0, -420.0, 2230.0)
    worse = u.Interval("ml.brier", 0.004, 0.001, 0.007)
    assert better.words(0.95) == (
        "Expected profit +910 (95% interval +120 to +1,700): better beyond test-set noise "
        "(the interval excludes 0)"
    )
    assert "within test-set noise (the interval includes 0)" in noise.words(0.95)
    assert worse.verdict == "worse"
    assert "worse beyond" in worse.words(0.9)


def test_gate_opt_in_needs_a_significant_primary_improvement(params: Params) -> None:
    primary = params.uncertainty.primary
    on = params_with({"gate.require_significant_improvement": True}).gate

    def paired(low: float, high: float) -> u.PairedBootstrap:
        interval = u.Interval(primary, (low + high) / 2, low, high)
        return u.PairedBootstrap(10_000, 1000, 0.95, 42, {primary: interval}, 0)

    assert not params.gate.require_significant_improvement, "the opt-in is off by default"
    assert gate.check_significance(paired(-50, 900), params.gate, primary) == []
    assert gate.check_significance(paired(10, 900), on, primary, "main") == []
    [miss] = gate.check_significance(paired(-50, 900), on, primary, "main")
    assert "gate.require_significant_improvement" in miss
    assert "within test-set noise" in miss
    assert "main" in miss
    [missing] = gate.check_significance(None, on, primary, "main", "the base model is absent")
    assert "the base model is absent" in missing
