"""The model files the scoring engines load: a fresh clone has none (they are DVC outputs), so
`make score` says which file is missing and what to run; a Spark worker checks the broadcast
bytes against the card before it unpickles them (no Spark needed: the worker's function)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_template.core.errors import ModelIntegrityError
from mlops_template.scoring import spark
from mlops_template.scoring.batch import main
from tests.scoring.conftest import Trained, params_file

pytestmark = pytest.mark.unit


@pytest.fixture
def records(base: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "records.parquet"
    base.head(20).to_parquet(path, index=False)
    return path


def _says_what_to_run(text: str, missing: Path) -> None:
    assert f"{missing} " in text, f"the missing file is named: {text}"
    assert "`make run`" in text, text
    assert "`make pull`" in text, text


def test_score_without_the_model_names_it_and_says_to_run_or_pull_first(
    records: Path, trained: Trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As `make score` runs it on a fresh clone: the default paths from params.yaml."""
    missing = tmp_path / "models" / "model.joblib"
    changes: dict[str, object] = {
        "paths.model": str(missing),
        "paths.model_card": str(trained.card),
    }
    output = tmp_path / "scored"
    argv = ["--params", str(params_file(tmp_path, changes)), "--input", str(records)]
    assert main([*argv, "--output", str(output)]) == 1
    _says_what_to_run(caplog.text, missing)
    assert str(trained.card) not in caplog.text, "only the missing file is named"
    assert not output.exists(), "nothing written"


def test_a_missing_model_card_is_named_too(
    records: Path, trained: Trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, card = tmp_path / "model.joblib", tmp_path / "model_card.json"
    output = tmp_path / "scored"
    argv = ["--input", str(records), "--output", str(output), "--model", str(model)]
    assert main([*argv, "--card", str(card)]) == 1
    _says_what_to_run(caplog.text, model)
    assert str(card) in caplog.text
    assert not output.exists()


def test_a_spark_worker_refuses_tampered_model_bytes_before_unpickling(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_bytes, card_bytes = trained.path.read_bytes(), trained.card.read_bytes()
    assert spark._worker_model((model_bytes, card_bytes), trained.model.table).version == (
        trained.model.version
    ), "the untouched bytes load"
    tampered = bytearray(model_bytes)
    tampered[len(tampered) // 2] ^= 0x01

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tampered bytes must never be unpickled")

    monkeypatch.setattr("joblib.load", refuse)
    cached = dict(spark._MODELS)
    with pytest.raises(ModelIntegrityError, match="does not match") as raised:
        spark._worker_model((bytes(tampered), card_bytes), trained.model.table)
    assert trained.model.sha256 in str(raised.value), "the message names the card's hash"
    assert dict(spark._MODELS) == cached, "a refused model is not kept for the worker's next batch"
