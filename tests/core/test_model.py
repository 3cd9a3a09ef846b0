"""Behaviour of the trained model, from the schema and params: quality floors, invariance
(the id, row order, metadata never change a score), direction (the monotonic constraints in
params hold), determinism and integrity (a model file or card that changed is refused).

The model is trained once per module on the team's own rows (`data.source`).
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_template.core import catalog
from mlops_template.core import model as model_module
from mlops_template.core.errors import ModelIntegrityError
from mlops_template.core.model import LoadedModel, ModelCard, load_model, package_model, write_model
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Column, Kind, Table
from mlops_template.pipeline.evaluate import evaluate_model
from mlops_template.pipeline.split import split_table
from mlops_template.pipeline.train import train_model
from tests.support import params_with, team_table

pytestmark = pytest.mark.model

N_ROWS = 20_000  # of the built-in sample; a team's own table is used whole
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
    write_model(*package_model(estimator, params.model, len(train)), path, card)
    return path, card


@pytest.fixture(scope="module")
def model_params(params: Params) -> Params:
    return params_with({"data.sample.n_rows": N_ROWS} if params.data.uses_sample else {})


@pytest.fixture(scope="module")
def trained(model_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    frame = team_table(model_params)
    train, test = split_table(frame, model_params.split)
    path, card = _train_and_save(train, model_params, tmp_path_factory.mktemp("model"))
    loaded = load_model(path, card)
    return Trained(loaded, path, card, train, test, evaluate_model(test, loaded, model_params))


def test_meets_every_floor_of_the_gate(trained: Trained, model_params: Params) -> None:
    for key, bound in model_params.gate.floors.items():
        spec = catalog.BY_KEY[key]
        value = spec.value(trained.metrics)
        assert value is not None, key
        ok = value >= bound if spec.direction == "higher" else value <= bound
        assert ok, f"{key} = {value:.4f} misses the gate's bound {bound}"


def test_profit_beats_both_baselines(trained: Trained) -> None:
    money = trained.metrics["business"]
    assert money["expected_profit"] > money["profit_contact_all"]
    assert money["expected_profit"] > money["profit_contact_none"]
    assert 0 < money["contact_rate"] < 1


def test_threshold_is_tuned_for_profit(trained: Trained) -> None:
    # The profit-maximising threshold contacts records while a contact still pays off on
    # average: the precision there stays above break-even.
    assert 0 < trained.model.threshold < 1
    precision = trained.metrics["ml"]["precision"]
    assert precision > trained.metrics["business"]["break_even_precision"]


def test_only_features_reach_the_model(trained: Trained) -> None:
    assert trained.model.estimator.n_features_in_ == len(TABLE.feature_names)
    assert trained.model.card.features == TABLE.feature_names
    outside = {c.name for c in TABLE.columns if not c.is_feature} | {TABLE.label.name}
    assert not outside & set(TABLE.feature_names)


def _shuffled(frame: pd.DataFrame, columns: list[str], seed: int = 0) -> pd.DataFrame:
    order = np.random.default_rng(seed).permutation(len(frame))
    return frame.assign(**{c: frame[c].to_numpy()[order] for c in columns})


def test_invariance_to_the_id_and_metadata_columns(trained: Trained) -> None:
    columns = [c.name for c in TABLE.columns if not c.is_feature]
    before = trained.model.probability(trained.test)
    after = trained.model.probability(_shuffled(trained.test, columns))
    np.testing.assert_array_equal(after, before)


def test_records_score_bit_for_bit_like_the_frame(trained: Trained) -> None:
    """The service scores records without a frame; the numbers must be the pipeline's."""
    rows = trained.test.head(500).to_dict("records")
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in rows]  # fmt: skip
    np.testing.assert_array_equal(
        trained.model.probability_of_rows(rows), trained.model.probability(trained.test.head(500))
    )


def test_invariance_to_row_order(trained: Trained) -> None:
    test = trained.test
    order = np.random.default_rng(0).permutation(len(test))
    shuffled = trained.model.probability(test.iloc[order])
    np.testing.assert_allclose(shuffled, trained.model.probability(test)[order], rtol=0, atol=EPS)


def _levels(col: Column, frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Copies of `frame` with the column raised step by step, lowest first."""
    if col.kind is Kind.CATEGORICAL:
        return [frame.assign(**{col.name: level}) for level in col.categories]
    if col.kind is Kind.BOOLEAN:
        return [frame.assign(**{col.name: value}) for value in (False, True)]
    values = frame[col.name]
    spread = float(values.std()) or 1.0
    top = col.max if col.max is not None else float(values.max()) + 3 * spread
    steps = [0.0, 0.5, 1.0, 3.0]
    out = []
    for step in steps:
        raised = (values + step * spread).clip(upper=top)
        if col.dtype == "int64":
            raised = np.floor(raised).astype("int64").clip(lower=values)
        out.append(frame.assign(**{col.name: raised}))
    return out


MONOTONIC = sorted(params_with({}).model.monotonic.items())


@pytest.mark.parametrize(("column", "direction"), MONOTONIC, ids=[c for c, _ in MONOTONIC])
def test_direction_declared_in_params_holds(trained: Trained, column: str, direction: int) -> None:
    col = TABLE.by_name[column]
    risk = [trained.model.probability(f) for f in _levels(col, trained.test)]
    for lower, higher in itertools.pairwise(risk):
        against = int(((higher - lower) * direction < -EPS).sum())
        assert against == 0, f"{against} rows move against model.monotonic.{column} = {direction}"
    moved = (risk[-1] - risk[0]) * direction
    assert moved.mean() > 0, f"raising {column} should move the probability (direction {direction})"


def test_determinism_same_bytes_and_metrics(
    trained: Trained, model_params: Params, tmp_path: Path
) -> None:
    path, card = _train_and_save(trained.train, model_params, tmp_path)
    assert path.read_bytes() == trained.path.read_bytes()
    assert card.read_bytes() == trained.card.read_bytes()
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
    card.write_text(json.dumps({"version": "x", "threshold": 0.2}), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="not a model card"):
        load_model(trained.path, card)
    with pytest.raises(ModelIntegrityError, match="model file not found"):
        load_model(tmp_path / "gone.joblib", trained.card)


def test_an_edited_threshold_in_the_card_is_refused(trained: Trained, tmp_path: Path) -> None:
    card = json.loads(trained.card.read_text(encoding="utf-8"))
    card["threshold"] = 0.99  # every record would flip to "do not contact"
    edited = tmp_path / "model_card.json"
    edited.write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match=r"threshold 0\.99 differs from the model's own"):
        load_model(trained.path, edited)


CATEGORICAL = [c.name for c in TABLE.features if c.kind is Kind.CATEGORICAL][:1]


@pytest.mark.parametrize("name", CATEGORICAL)
def test_a_schema_that_reorders_categories_is_refused(trained: Trained, name: str) -> None:
    categorical = TABLE.by_name[name]
    reordered = Column(
        categorical.name, categorical.kind, categorical.description, dtype=categorical.dtype,
        categories=tuple(reversed(categorical.categories)), ordered=categorical.ordered,
    )  # fmt: skip
    columns = tuple(reordered if c.name == categorical.name else c for c in TABLE.columns)
    other = Table(name=TABLE.name, columns=columns, label=TABLE.label, checks=TABLE.checks)
    with pytest.raises(ModelIntegrityError, match="Retrain"):
        load_model(trained.path, trained.card, other)


def test_model_card_matches_the_file(trained: Trained, model_params: Params) -> None:
    card = ModelCard.read(trained.card)
    assert card.sha256 == model_module.files.sha256_file(trained.path)
    assert card.version == card.sha256[: model_module.VERSION_LENGTH]
    assert card.kind == model_params.model.kind
    assert card.features == TABLE.feature_names
    assert card.n_train == len(trained.train)
    assert card.threshold == float(trained.model.estimator.best_threshold_)
    assert (card.label, card.positive) == (TABLE.label.name, TABLE.label.positive)


def test_logistic_regression_kind_trains(trained: Trained, model_params: Params) -> None:
    params = model_params.model_copy(
        update={"model": model_params.model.model_copy(update={"kind": "logistic_regression"})}
    )
    estimator = train_model(trained.train, params)
    assert isinstance(estimator.estimator_.named_steps["classifier"], LogisticRegression)
    _, card = package_model(estimator, params.model, len(trained.train))
    loaded = LoadedModel(estimator, card)
    metrics = evaluate_model(trained.test, loaded, params)
    assert metrics["business"]["profit_vs_contact_none"] > 0
    columns = [c.name for c in TABLE.columns if not c.is_feature]
    np.testing.assert_array_equal(
        loaded.probability(trained.test), loaded.probability(_shuffled(trained.test, columns))
    )


# --- writing a model and its card together (no training needed) ----------------------


def _pair(tag: str) -> tuple[bytes, ModelCard]:
    payload = f"model {tag}".encode()
    sha256 = model_module.files.sha256_bytes(payload)
    card = ModelCard(
        sha256=sha256, version=model_module.model_version(sha256), kind=tag, threshold=0.5,
        expected_profit_cv=0.0, features=(), n_train=1, sklearn_version="0",
    )  # fmt: skip
    return payload, card


def _on_disk(path: Path, card: Path) -> tuple[bytes | None, str | None]:
    return (
        path.read_bytes() if path.exists() else None,
        ModelCard.read(card).kind if card.exists() else None,
    )


def _fail_second_replace(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """`os.replace` that fails on its second call; records whether SIGTERM was held."""
    import os
    import signal

    real, held = os.replace, []

    def replace(src: Any, dst: Any) -> None:
        held.append(signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []))
        if len(held) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return held


def test_a_failed_card_rename_puts_the_previous_model_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, card = tmp_path / model_module.MODEL_FILE, tmp_path / model_module.CARD_FILE
    write_model(*_pair("old"), path, card)
    held = _fail_second_replace(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write_model(*_pair("new"), path, card)
    assert _on_disk(path, card) == (b"model old", "old"), "the model no longer matches its card"
    assert held[:2] == [True, True], "the stop signals were not held during the renames"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, card.name])
    monkeypatch.undo()
    load_card = ModelCard.read(card)
    assert load_card.sha256 == model_module.files.sha256_file(path)


def test_a_failed_card_rename_of_a_first_model_leaves_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, card = tmp_path / "models" / "m.joblib", tmp_path / "models" / "m.json"
    _fail_second_replace(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write_model(*_pair("new"), path, card)
    assert _on_disk(path, card) == (None, None)
    assert list(path.parent.iterdir()) == []


def test_after_a_stop_neither_file_is_replaced(tmp_path: Path) -> None:
    from mlops_template.core import stopping

    path, card = tmp_path / model_module.MODEL_FILE, tmp_path / model_module.CARD_FILE
    write_model(*_pair("old"), path, card)
    stopping._requested.set()
    try:
        with pytest.raises(stopping.Stopped):
            write_model(*_pair("new"), path, card)
    finally:
        stopping._requested.clear()
    assert _on_disk(path, card) == (b"model old", "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, card.name])
    write_model(*_pair("new"), path, card)
    assert _on_disk(path, card) == (b"model new", "new")
