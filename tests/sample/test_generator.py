"""The built-in sample generator: seeded, valid, realistic (the sample's own tests: a team
that replaces the sample deletes them with `src/<package>/sample/`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.errors import ParamsError
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.validation import validate_table as validate_customers
from mlops_template.sample import Drift, Sample, generate, parse_sample
from tests.support import raw_params

pytestmark = pytest.mark.sample

LABEL, ID = TABLE.label.name, "customer_id"
generate_customers = generate


def _cfg(params: Params, **changes: object) -> Sample:
    knobs = raw_params()["data"]["sample"]
    return Sample.model_validate({**knobs, **changes})


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
    assert list(sample.columns) == list(TABLE.column_names)
    assert sample[ID].is_unique


def test_passes_the_schema_unchanged(sample: pd.DataFrame) -> None:
    validated = validate_customers(sample)
    pd.testing.assert_frame_equal(validated, sample)


def test_churn_rate_is_imbalanced_but_not_rare(sample: pd.DataFrame) -> None:
    rate = sample[LABEL].mean()
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
    for col in TABLE.columns:
        share = sample[col.name].isna().mean()
        if col.nullable:
            assert 0 < share <= col.max_null_fraction, f"{col.name}: null share {share:.3f}"
        else:
            assert share == 0, f"{col.name} is required but has missing values"


def test_known_risk_factors_raise_churn(sample: pd.DataFrame) -> None:
    by_contract = sample.groupby("contract")[LABEL].mean()
    assert by_contract["month_to_month"] > by_contract["one_year"] > by_contract["two_year"]
    many_calls = sample["support_calls"] >= 4
    assert sample.loc[many_calls, LABEL].mean() > sample.loc[~many_calls, LABEL].mean()


def test_label_noise_knob_flips_labels(params: Params) -> None:
    clean = generate_customers(_cfg(params, n_rows=5_000, label_noise=0.0))
    noisy = generate_customers(_cfg(params, n_rows=5_000, label_noise=0.3))
    flipped = (clean[LABEL] != noisy[LABEL]).mean()
    assert 0.2 < flipped < 0.4


def test_drift_knobs_shift_the_distribution(params: Params) -> None:
    base = generate_customers(_cfg(params, n_rows=10_000))
    drift = Drift(month_to_month_share=0.9, monthly_charges_shift=20.0)
    shifted = generate_customers(_cfg(params, n_rows=10_000, drift=drift))
    assert (shifted["contract"] == "month_to_month").mean() == pytest.approx(0.9, abs=0.02)
    assert shifted["monthly_charges"].mean() > base["monthly_charges"].mean() + 15
    validate_customers(shifted)


def test_knobs_are_checked_and_typos_named() -> None:
    knobs = raw_params()["data"]["sample"]
    with pytest.raises(ParamsError, match=r"data\.sample\.drift\.tenure_scal"):
        parse_sample({**knobs, "drift": {"tenure_scal": 2.0}})
    with pytest.raises(ParamsError, match=r"data\.sample\.n_rows"):
        parse_sample({**knobs, "n_rows": "many"})
    with pytest.raises(ParamsError, match=r"needed when data\.source is 'sample'"):
        parse_sample(None)


def test_the_sample_has_signal_but_not_a_perfect_one(params: Params) -> None:
    # With label noise, a near-perfect ROC AUC on the sample would mean the label leaked.
    from mlops_template.core.model import LoadedModel, package_model
    from mlops_template.pipeline.evaluate import evaluate_model
    from mlops_template.pipeline.split import split_table
    from mlops_template.pipeline.train import train_model

    frame = validate_customers(generate(_cfg(params, n_rows=8_000)))
    train, test = split_table(frame, params.split)
    estimator = train_model(train, params)
    _, card = package_model(estimator, params.model, len(train))
    auc = evaluate_model(test, LoadedModel(estimator, card), params)["ml"]["roc_auc"]
    assert 0.7 < auc < 0.95
