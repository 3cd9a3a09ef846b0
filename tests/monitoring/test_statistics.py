"""The pure parts of monitoring on small hand-made data: binned drift statistics, the
Poisson bootstrap, the retraining rule and its window history, the quality check on every
corruption the schema implies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_template.core.params import Params, Tolerance
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Column, Kind
from mlops_template.monitoring import drift, performance, quality, rule
from mlops_template.monitoring.performance import Decisions, Interval
from tests.support import corruptions, team_table

pytestmark = pytest.mark.unit

NUMBER = Column("x", Kind.NUMERIC, "a number", nullable=True, max_null_fraction=1.0)
CATEGORY = Column("c", Kind.CATEGORICAL, "a category", dtype="str", categories=("a", "b", "c"))


# --- drift ------------------------------------------------------------------------------------


def test_numeric_bins_are_the_references_quantiles_plus_missing() -> None:
    ref = pd.Series(np.arange(100, dtype=float))
    bins = drift.numeric_binning(ref, 4)
    np.testing.assert_allclose(bins.edges, [24.0, 49.0, 74.0])  # values the data has
    counts = bins.count(pd.Series([0.0, 30.0, 30.0, 99.0, np.nan, "text"]))
    assert counts.tolist() == [1, 2, 0, 1, 2], "text counts as missing (quality reports it)"
    assert bins.labels[-1] == drift.MISSING


def test_ties_merge_bins_for_a_count_column() -> None:
    bins = drift.numeric_binning(pd.Series([0] * 80 + [1] * 15 + [2] * 5), 10)
    assert bins.edges.tolist() == [0.0, 1.0]


def test_categories_count_unknown_and_missing_apart() -> None:
    bins = drift.binning(CATEGORY, pd.Series(["a"]), 10)
    counts = bins.count(pd.Series(["a", "a", "c", "zzz", None]))
    assert counts.tolist() == [2, 0, 1, 1, 1]
    assert bins.labels == ["a", "b", "c", drift.OTHER, drift.MISSING]


def test_the_same_distribution_does_not_drift_and_a_shift_does(params: Params) -> None:
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(size=20_000))
    same = drift.column_drift(
        NUMBER, ref, pd.Series(rng.normal(size=2_000)), params.monitor.drift, 0.01
    )
    moved = drift.column_drift(
        NUMBER, ref, pd.Series(rng.normal(0.5, 1, size=2_000)), params.monitor.drift, 0.01
    )
    assert not same.drifted
    assert same.psi < 0.02
    assert same.p_value > 0.01
    assert moved.drifted
    assert moved.psi > params.monitor.drift.min_psi
    assert moved.p_value < 1e-6
    assert "higher" in moved.reason
    assert moved.ks_statistic is not None
    assert moved.ks_p_value is not None


def test_a_column_arriving_all_null_drifts_and_says_so(params: Params) -> None:
    ref = pd.Series(np.r_[np.arange(900, dtype=float), [np.nan] * 100])
    result = drift.column_drift(NUMBER, ref, pd.Series([np.nan] * 500), params.monitor.drift, 0.01)
    assert result.drifted
    assert "missing in 100% of records (was 10%)" in result.reason


def test_a_category_mix_change_names_the_category(params: Params) -> None:
    ref = pd.Series(["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    win = pd.Series(["a"] * 200 + ["b"] * 300 + ["c"] * 500)
    result = drift.column_drift(CATEGORY, ref, win, params.monitor.drift, 0.01)
    assert result.drifted
    assert result.reason in ("'a': 20% of records, was 50%", "'c': 50% of records, was 20%")


def test_psi_bound_below_min_psi_is_not_flagged_even_if_significant(params: Params) -> None:
    """A million rows find a tiny move significant; min_psi keeps it from an alarm."""
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.normal(size=200_000))
    win = pd.Series(rng.normal(0.05, 1, size=1_000_000))
    result = drift.column_drift(NUMBER, ref, win, params.monitor.drift, 0.01)
    assert result.p_value < 1e-6
    assert result.psi < params.monitor.drift.min_psi
    assert not result.drifted


def test_contact_rate_moves_only_beyond_chance_and_the_floor(params: Params) -> None:
    rng = np.random.default_rng(2)
    ref_scores = rng.random(10_000)
    cfg = params.monitor.drift
    same = drift.prediction_drift(
        ref_scores, ref_scores > 0.5, rng.random(2_000), rng.random(2_000) > 0.5, cfg
    )
    more = drift.prediction_drift(
        ref_scores, ref_scores > 0.5, rng.random(2_000), rng.random(2_000) > 0.3, cfg
    )
    assert not same.drifted
    assert more.contact_drifted
    assert more.contact_rate == pytest.approx(0.7, abs=0.03)
    assert drift.two_proportions_p(50, 100, 50, 100) == pytest.approx(1.0)


# --- bootstrap --------------------------------------------------------------------------------


def _decisions(n: int, seed: int, ties: bool = False) -> Decisions:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    p = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1)
    if ties:
        p = np.round(p, 1)
    return Decisions(y.astype(np.int64), p, p >= 0.35)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_roc_auc_equals_scikit_learns(params: Params, ties: bool) -> None:
    d = _decisions(3_000, 0, ties)
    stats = performance.weighted_stats(np.ones((1, 3_000)), d, params.business)
    assert stats["roc_auc"][0] == pytest.approx(roc_auc_score(d.y, d.probability), abs=1e-12)
    assert stats["precision"][0] == pytest.approx(d.y[d.contact].mean())


def test_intervals_hold_the_point_are_seeded_and_narrow_with_more_records(params: Params) -> None:
    cfg = params.monitor.performance
    small, big = _decisions(500, 1), _decisions(20_000, 1)
    (a,), _ = performance.estimate([small], params.business, cfg)
    (again,), _ = performance.estimate([small], params.business, cfg)
    (b,), _ = performance.estimate([big], params.business, cfg)
    assert a == again, "same seed, same intervals"
    for key in performance.STATS:
        assert a[key].low <= a[key].value <= a[key].high, key
        assert (b[key].high - b[key].low) < (a[key].high - a[key].low), key


def test_a_model_against_itself_differs_by_exactly_zero(params: Params) -> None:
    d = _decisions(2_000, 2)
    _, diff = performance.estimate([d, d], params.business, params.monitor.performance)
    assert diff is not None
    assert diff["profit_per_record"] == Interval(0.0, 0.0, 0.0)


def test_the_subsampled_bootstrap_is_rescaled_to_the_whole_window(params: Params) -> None:
    d = _decisions(40_000, 3)
    cfg = params.monitor.performance
    (full,), _ = performance.estimate([d], params.business, cfg)
    (sub,), _ = performance.estimate(
        [d], params.business, cfg.model_copy(update={"bootstrap_max_rows": 4_000})
    )
    for key in ("roc_auc", "profit_per_record"):
        width_full = full[key].high - full[key].low
        width_sub = sub[key].high - sub[key].low
        assert sub[key].value == full[key].value
        assert width_sub == pytest.approx(width_full, rel=0.35), key


def test_a_drop_holds_the_noise_of_the_test_set_too(params: Params) -> None:
    window, test_small, test_big = _decisions(2_000, 4), _decisions(300, 5), _decisions(30_000, 5)
    cfg = params.monitor.performance
    expected = {"roc_auc": 0.8}
    money, level = params.business, cfg.confidence
    win = performance.resample([window], money, cfg, cfg.seed)
    small = performance.resample([test_small], money, cfg, cfg.seed + 1)
    big = performance.resample([test_big], money, cfg, cfg.seed + 1)
    wide = performance.drops(win, small, expected, level)["roc_auc"]
    narrow = performance.drops(win, big, expected, level)["roc_auc"]
    assert wide.value == narrow.value
    assert (wide.high - wide.low) > (narrow.high - narrow.low)


def test_too_few_outcomes_are_not_judged(params: Params) -> None:
    cfg = params.monitor.performance
    assert performance.judged(np.zeros(cfg.min_outcomes), cfg) is not None
    assert (
        performance.judged(np.r_[np.ones(cfg.min_outcomes), np.zeros(cfg.min_outcomes)], cfg)
        is None
    )


# --- the rule and its history -------------------------------------------------------------------


def test_a_drop_fires_only_beyond_the_tolerance_and_chance() -> None:
    tol = Tolerance(absolute=0.03)
    big_sure = rule.drop_check(
        "a", "A", Interval(0.7, 0.68, 0.72), 0.8, Interval(0.1, 0.07, 0.13), tol, "{:.2f}"
    )
    big_unsure = rule.drop_check(
        "a", "A", Interval(0.7, 0.6, 0.8), 0.8, Interval(0.1, -0.01, 0.2), tol, "{:.2f}"
    )
    small = rule.drop_check(
        "a", "A", Interval(0.78, 0.77, 0.79), 0.8, Interval(0.02, 0.01, 0.03), tol, "{:.2f}"
    )
    assert big_sure.triggered
    assert "0.10 lower" in big_sure.detail
    assert not big_unsure.triggered
    assert "chance" in big_unsure.detail
    assert not small.triggered
    assert "within" in small.detail


def test_history_replaces_a_window_analysed_again_and_counts_the_streak() -> None:
    history: list[dict[str, object]] = []
    for i, drifted in enumerate([True, False, True, True]):
        history = rule.with_window(
            history,
            {"id": f"w{i}", "last_ts": f"2026-01-0{i + 1}", "dataset_drift": drifted},
            keep=10,
        )
    assert rule.drift_streak(history, "w3") == 2
    assert rule.drift_streak(history, "w1") == 0
    history = rule.with_window(
        history, {"id": "w3", "last_ts": "2026-01-04", "dataset_drift": False}, keep=10
    )
    assert [w["id"] for w in history] == ["w0", "w1", "w2", "w3"]
    assert rule.drift_streak(history, "w3") == 0
    assert len(rule.with_window(history, {"id": "w9", "last_ts": "2026-02-01"}, keep=3)) == 3


def test_monitor_params_are_checked(params: Params) -> None:
    from tests.support import params_with

    with pytest.raises(Exception, match="drift_windows"):
        params_with({"monitor.rule.history": 1, "monitor.rule.drift_windows": 2})
    with pytest.raises(Exception, match="not among"):
        params_with({"monitor.simulate.sample": {"typo_drift": {}}})


# --- quality: every corruption the schema implies -------------------------------------------


INPUTS = {c.name for c in TABLE.input_columns}
CASES = [
    c for c in corruptions()
    if (c.column in INPUTS or c.column == "<table>")
    and c.id not in ("missing-column", "extra-column")
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_quality_names_every_schema_failure_of_the_inputs(params: Params, case: object) -> None:
    rows = team_table(params, n_rows=200).loc[:, [c.name for c in TABLE.input_columns]]
    broken = case.apply(rows)  # type: ignore[attr-defined]
    result = quality.check_quality(broken.reset_index(drop=True), TABLE)
    assert not result.passed
    named = {p.column for p in result.problems}
    assert case.column in named, (case.id, [p.message for p in result.problems])  # type: ignore[attr-defined]


def test_clean_inputs_pass_with_their_null_counts(params: Params) -> None:
    rows = team_table(params, n_rows=300).loc[:, [c.name for c in TABLE.input_columns]]
    result = quality.check_quality(rows, TABLE)
    assert result.passed
    assert result.problems == []
    assert result.nulls == {c: int(rows[c].isna().sum()) for c in rows.columns}
