"""params.yaml: loaded once into frozen models; every mistake names the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from conftest import ROOT, raw_params, set_dotted
from mlops_template import schema
from mlops_template.params import Model, Params, ParamsError, load_params, parse_params

pytestmark = pytest.mark.unit


def _invalid(changes: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(set_dotted(raw_params(), changes))
    return str(info.value)


def test_params_yaml_parses(params: Params) -> None:
    assert isinstance(params, Params)
    assert parse_params(raw_params()) == params
    assert params.data.sample.n_rows >= 100
    assert set(params.evaluate.segments) <= set(schema.BY_NAME)


def test_params_are_frozen(params: Params) -> None:
    with pytest.raises(pydantic.ValidationError):
        params.split.seed = 1  # type: ignore[misc]


def test_unknown_key_names_the_key_and_the_allowed_keys() -> None:
    raw = raw_params()
    raw["model"]["kinnd"] = "logistic_regression"
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "unknown key 'model.kinnd'" in message
    for allowed in Model.model_fields:
        assert allowed in message, f"allowed key {allowed!r} missing from: {message}"


def test_unknown_top_level_key() -> None:
    raw = raw_params()
    raw["modle"] = {}
    with pytest.raises(ParamsError, match=r"unknown key 'modle'.*paths, data, split, model"):
        parse_params(raw)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("data.sample.n_rows", "50000"),  # a string is not silently turned into a number
        ("split.stratify", "yes"),
        ("business.contact_cost", "ten"),
        ("model.kind", "random_forest"),
        ("split.test_size", 1.5),
        ("data.sample.n_rows", 10),
    ],
)
def test_wrong_type_or_value_names_the_key(key: str, value: Any) -> None:
    message = _invalid({key: value})
    assert f"'{key}'" in message
    assert repr(value) in message


def test_missing_key_is_named() -> None:
    raw = raw_params()
    del raw["split"]["seed"]
    with pytest.raises(ParamsError, match=r"missing key 'split\.seed'"):
        parse_params(raw)


def test_segments_must_be_schema_columns() -> None:
    message = _invalid({"evaluate.segments": ["contract", "colour"]})
    assert "colour" in message
    assert "contract" in message  # the known columns are listed


def test_segment_gap_columns_must_be_reported_segments() -> None:
    message = _invalid({"gate.max_segment_roc_auc_gap": {"payment_method": 0.1}})
    assert "payment_method" in message
    assert "evaluate.segments" in message


@pytest.mark.parametrize(
    ("monotonic", "named"),
    [
        ({"region": 1}, "region"),  # unordered category: no direction exists
        ({"customer_id": 1}, "customer_id"),
        ({"support_calls": 2}, "model.monotonic.support_calls"),
    ],
)
def test_monotonic_constraints_are_validated(monotonic: dict[str, int], named: str) -> None:
    assert named in _invalid({"model.monotonic": monotonic})


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ParamsError, match="mapping"):
        parse_params(["not", "a", "mapping"])


def test_load_params_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_stage_cli_with_bad_params_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    raw = raw_params()
    raw["threshold"]["cv_fold"] = 5  # misspelled
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_template.train",
            "--params",
            str(bad),
            "--train",
            "t.parquet",
            "--model",
            "m.joblib",
            "--card",
            "c.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "unknown key 'threshold.cv_fold'" in result.stderr
    assert "cv_folds" in result.stderr  # the allowed key
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.joblib").exists()


def test_params_yaml_is_what_the_repo_ships() -> None:
    assert load_params(ROOT / "params.yaml") == parse_params(raw_params())
