"""Behaviour of the trained model: quality floor, invariance, direction, determinism, integrity.

One 20k-row sample is trained once per session; the tests read that model.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conftest import params_with
from mlops_template import model as model_module
from mlops_template import schema, storage
from mlops_template.evaluate import evaluate_model
from mlops_template.model import LoadedModel, ModelIntegrityError, dump_model, load_model
from mlops_template.params import Params
from mlops_template.sample import generate_customers
from mlops_template.split import split_customers
from mlops_template.train import train_model

pytestmark = pytest.mark.model

N_ROWS = 20_000
EPS = 1e-12  # float noise allowed when a probability "does not go down"


@dataclass(frozen=True)
class Trained:
    model: LoadedModel
    path: Path
    card: Path
    train: pd.DataFrame
    test: pd.DataFrame
    metrics: dict[str, Any]


def _train_and_save(train: pd.DataFrame, params: Params, directory: Path) -> tuple[Path, Path]:
    estimator = train_model(train, params)
    path, card = directory / "model.joblib", directory / "model_card.json"
    sha256 = model_module.save_model(estimator, path)
    storage.write_json(
        card, model_module.model_metadata(estimator, sha256, params.model, len(train))
    )
    return path, card


@pytest.fixture(scope="module")
def model_params() -> Params:
    return params_with({"data.sample.n_rows": N_ROWS})


@pytest.fixture(scope="module")
def trained(model_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    frame = generate_customers(model_params.data.sample)
    train, test = split_customers(frame, model_params.split)
    path, card = _train_and_save(train, model_params, tmp_path_factory.mktemp("model"))
    loaded = load_model(path, card)
    return Trained(loaded, path, card, train, test, evaluate_model(test, loaded, model_params))


def test_meets_every_floor_of_the_gate(trained: Trained, model_params: Params) -> None:
    ml = trained.metrics["ml"]
    for name, floor in model_params.gate.floors.model_dump().items():
        assert ml[name] >= floor, f"ml.{name} = {ml[name]:.4f} is below the gate floor {floor}"


def test_signal_is_real_but_not_perfect(trained: Trained) -> None:
    # A near-perfect score on this noisy sample would mean the label leaked into a feature.
    assert trained.metrics["ml"]["roc_auc"] < 0.95


def test_profit_beats_both_baselines(trained: Trained) -> None:
    money = trained.metrics["business"]
    assert money["expected_profit"] > money["profit_contact_all"]
    assert money["expected_profit"] > money["profit_contact_none"]
    assert 0 < money["contact_rate"] < 1


def test_threshold_is_tuned_for_profit(trained: Trained, model_params: Params) -> None:
    # Contacts are cheap next to a saved customer, so the best threshold is well below 0.5,
    # and precision may be modest as long as it stays above break-even.
    assert 0 < trained.model.threshold < 0.5
    precision = trained.metrics["ml"]["precision"]
    assert precision > trained.metrics["business"]["break_even_precision"]


def test_id_never_reaches_the_model(trained: Trained) -> None:
    assert list(trained.model.estimator.feature_names_in_) == list(schema.FEATURE_NAMES)
    assert schema.ID not in schema.FEATURE_NAMES
    assert schema.LABEL not in schema.FEATURE_NAMES


def test_invariance_to_the_customer_id(trained: Trained) -> None:
    test = trained.test
    renamed = test.assign(**{schema.ID: [f"C{99_999_999 - i:08d}" for i in range(len(test))]})
    before = trained.model.churn_probability(test)
    after = trained.model.churn_probability(renamed)
    np.testing.assert_array_equal(after, before)


def test_invariance_to_row_order(trained: Trained) -> None:
    test = trained.test
    order = np.random.default_rng(0).permutation(len(test))
    shuffled = trained.model.churn_probability(test.iloc[order])
    np.testing.assert_allclose(
        shuffled, trained.model.churn_probability(test)[order], rtol=0, atol=EPS
    )


def test_direction_more_support_calls_never_lower_risk(trained: Trained) -> None:
    test = trained.test
    most = int(schema.BY_NAME["support_calls"].max or 0)
    before = trained.model.churn_probability(test)
    for extra in (1, 3, 10):
        more = test.assign(support_calls=(test["support_calls"] + extra).clip(upper=most))
        after = trained.model.churn_probability(more)
        lowered = int((after < before - EPS).sum())
        assert lowered == 0, f"{lowered} rows got a lower churn risk with {extra} more calls"
        assert (after > before + 1e-6).mean() > 0.5, "support calls should matter to the model"


def test_direction_shorter_contract_never_lowers_risk(trained: Trained) -> None:
    test = trained.test
    levels = schema.BY_NAME["contract"].categories  # month_to_month < one_year < two_year
    risk = {level: trained.model.churn_probability(test.assign(contract=level)) for level in levels}
    for shorter, longer in itertools.pairwise(levels):
        lowered = int((risk[shorter] < risk[longer] - EPS).sum())
        assert lowered == 0, f"{lowered} rows are less at risk on {shorter} than on {longer}"
    assert (risk[levels[0]] > risk[levels[-1]] + 1e-6).mean() > 0.5


def test_determinism_same_bytes_and_metrics(
    trained: Trained, model_params: Params, tmp_path: Path
) -> None:
    path, card = _train_and_save(trained.train, model_params, tmp_path)
    assert storage.sha256_file(path) == trained.model.sha256
    assert path.read_bytes() == trained.path.read_bytes()
    again = evaluate_model(trained.test, load_model(path, card), model_params)
    assert again == trained.metrics


@pytest.fixture
def never_unpickle(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model file was unpickled before its hash was checked")

    monkeypatch.setattr(model_module.joblib, "load", refuse)


@pytest.mark.usefixtures("never_unpickle")
def test_tampered_model_file_is_refused(trained: Trained, tmp_path: Path) -> None:
    path, card = tmp_path / "model.joblib", tmp_path / "model_card.json"
    shutil.copy(trained.card, card)
    payload = bytearray(trained.path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF  # same size, one byte different
    path.write_bytes(bytes(payload))
    with pytest.raises(ModelIntegrityError) as info:
        load_model(path, card)
    message = str(info.value)
    assert str(path) in message
    assert trained.model.sha256 in message  # the expected hash
    assert "does not match" in message
    assert "Refusing to load" in message


@pytest.mark.usefixtures("never_unpickle")
def test_model_card_without_hash_or_missing_model_is_refused(
    trained: Trained, tmp_path: Path
) -> None:
    card = tmp_path / "model_card.json"
    storage.write_json(card, {"version": "x", "threshold": 0.2})
    with pytest.raises(ModelIntegrityError, match="no 'sha256' recorded"):
        load_model(trained.path, card)
    with pytest.raises(ModelIntegrityError, match="model file not found"):
        load_model(tmp_path / "gone.joblib", trained.card)


def test_model_card_matches_the_file(trained: Trained, model_params: Params) -> None:
    card = storage.read_json(trained.card)
    assert card["sha256"] == storage.sha256_file(trained.path)
    assert card["version"] == card["sha256"][:12]
    assert card["kind"] == model_params.model.kind
    assert card["features"] == list(schema.FEATURE_NAMES)
    assert card["n_train"] == len(trained.train)
    assert card["threshold"] == trained.model.threshold


def test_logistic_regression_kind_trains(trained: Trained) -> None:
    params = params_with({"data.sample.n_rows": N_ROWS, "model.kind": "logistic_regression"})
    estimator = train_model(trained.train, params)
    assert isinstance(estimator.estimator_.named_steps["classifier"], LogisticRegression)
    digest = hashlib.sha256(dump_model(estimator)).hexdigest()
    loaded = LoadedModel(estimator, digest, float(estimator.best_threshold_))
    metrics = evaluate_model(trained.test, loaded, params)
    assert metrics["ml"]["roc_auc"] >= params.gate.floors.roc_auc
    assert metrics["business"]["profit_vs_contact_none"] > 0
    np.testing.assert_array_equal(
        loaded.churn_probability(trained.test),
        loaded.churn_probability(trained.test.assign(**{schema.ID: "C00000000"})),
    )
