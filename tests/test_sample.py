"""The built-in sample generator: seeded, valid, realistic, fast."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from mlops_template import schema
from mlops_template.params import Drift, Params, Sample
from mlops_template.sample import generate_customers
from mlops_template.validate import validate_customers

pytestmark = pytest.mark.unit


def _cfg(params: Params, **changes: object) -> Sample:
    return Sample.model_validate({**params.data.sample.model_dump(), **changes})


@pytest.fixture(scope="module")
def sample(params: Params) -> pd.DataFrame:
    return generate_customers(_cfg(params, n_rows=20_000))


def test_same_seed_same_frame(params: Params) -> None:
    cfg = _cfg(params, n_rows=2_000)
    pd.testing.assert_frame_equal(generate_customers(cfg), generate_customers(cfg))


def test_other_seed_other_frame(params: Params) -> None:
    a = generate_customers(_cfg(params, n_rows=2_000, seed=1))
    b = generate_customers(_cfg(params, n_rows=2_000, seed=2))
    assert not a.equals(b)
    assert not np.array_equal(a["monthly_charges"], b["monthly_charges"])


def test_requested_size_and_schema_columns(params: Params, sample: pd.DataFrame) -> None:
    assert len(sample) == 20_000
    assert list(sample.columns) == [c.name for c in schema.COLUMNS]
    assert sample[schema.ID].is_unique


def test_passes_the_schema_unchanged(sample: pd.DataFrame) -> None:
    validated = validate_customers(sample)
    pd.testing.assert_frame_equal(validated, sample)


def test_churn_rate_is_imbalanced_but_not_rare(sample: pd.DataFrame) -> None:
    rate = sample[schema.LABEL].mean()
    assert 0.15 <= rate <= 0.30, f"churn rate {rate:.3f} outside 15-30 %"


def test_total_charges_follow_tenure_times_monthly(sample: pd.DataFrame) -> None:
    billed = sample.dropna(subset=["total_charges"])
    billed = billed[billed["tenure_months"] > 0]
    expected = billed["tenure_months"] * billed["monthly_charges"]
    ratio = billed["total_charges"] / expected
    assert np.corrcoef(billed["total_charges"], expected)[0, 1] > 0.95
    assert ratio.median() == pytest.approx(1.0, abs=0.05)
    # Customers in their first month have no total yet.
    assert sample.loc[sample["tenure_months"] == 0, "total_charges"].isna().all()


def test_missing_values_only_in_nullable_columns(sample: pd.DataFrame) -> None:
    for col in schema.COLUMNS:
        share = sample[col.name].isna().mean()
        if col.nullable:
            assert 0 < share <= col.max_null_fraction, f"{col.name}: null share {share:.3f}"
        else:
            assert share == 0, f"{col.name} is required but has missing values"


def test_known_risk_factors_raise_churn(sample: pd.DataFrame) -> None:
    by_contract = sample.groupby("contract")[schema.LABEL].mean()
    assert by_contract["month_to_month"] > by_contract["one_year"] > by_contract["two_year"]
    many_calls = sample["support_calls"] >= 4
    assert (
        sample.loc[many_calls, schema.LABEL].mean() > sample.loc[~many_calls, schema.LABEL].mean()
    )


def test_label_noise_knob_flips_labels(params: Params) -> None:
    clean = generate_customers(_cfg(params, n_rows=5_000, label_noise=0.0))
    noisy = generate_customers(_cfg(params, n_rows=5_000, label_noise=0.3))
    flipped = (clean[schema.LABEL] != noisy[schema.LABEL]).mean()
    assert 0.2 < flipped < 0.4


def test_drift_knobs_shift_the_distribution(params: Params) -> None:
    base = generate_customers(_cfg(params, n_rows=10_000))
    drift = Drift(month_to_month_share=0.9, monthly_charges_shift=20.0)
    shifted = generate_customers(_cfg(params, n_rows=10_000, drift=drift))
    assert (shifted["contract"] == "month_to_month").mean() == pytest.approx(0.9, abs=0.02)
    assert shifted["monthly_charges"].mean() > base["monthly_charges"].mean() + 15
    validate_customers(shifted)


def test_large_samples_are_fast(params: Params) -> None:
    # 1M rows is the target; 200k keeps the suite quick and still catches non-vectorised code.
    started = time.perf_counter()
    frame = generate_customers(_cfg(params, n_rows=200_000))
    elapsed = time.perf_counter() - started
    assert len(frame) == 200_000
    assert frame[schema.ID].is_unique
    assert elapsed < 5.0, f"200k rows took {elapsed:.1f} s"
