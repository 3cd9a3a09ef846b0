"""params.yaml: loaded once into frozen models; every mistake names the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from mlops_template.core.errors import ParamsError
from mlops_template.core.params import Model, Params, load_params, parse_params
from mlops_template.core.schema import TABLE
from tests.support import DELETE, ROOT, raw_params, set_dotted

pytestmark = pytest.mark.unit


def _invalid(changes: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(set_dotted(raw_params(), changes))
    return str(info.value)


def test_params_yaml_parses(params: Params) -> None:
    assert isinstance(params, Params)
    assert parse_params(raw_params()) == params
    assert set(params.evaluate.segments) <= set(TABLE.segment_columns)
    assert set(params.model.monotonic) <= set(TABLE.ordered_features)


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
    with pytest.raises(ParamsError, match=r"unknown key 'modle'.*project, paths, data, split"):
        parse_params(raw)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("split.seed", "42"),  # a string is not silently turned into a number
        ("split.stratify", "yes"),
        ("business.contact_cost", "ten"),
        ("model.kind", "random_forest"),
        ("split.test_size", 1.5),
        ("project.name", "Not A Name"),
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


def test_segments_must_be_categorical_or_boolean_columns() -> None:
    message = _invalid({"evaluate.segments": ["not_a_column"]})
    assert "not_a_column" in message
    for allowed in TABLE.segment_columns:
        assert allowed in message  # the allowed columns are listed


def test_segment_gap_columns_must_be_reported_segments() -> None:
    message = _invalid({"gate.max_segment_roc_auc_gap": {"not_a_segment": 0.1}})
    assert "not_a_segment" in message
    assert "evaluate.segments" in message


UNORDERED = [n for n, cat in zip(TABLE.feature_names, TABLE.categorical_mask, strict=True) if cat]
NOT_FEATURES = [c.name for c in TABLE.columns if not c.is_feature]


@pytest.mark.parametrize("column", UNORDERED + NOT_FEATURES + ["not_a_column"])
def test_monotonic_constraints_need_an_ordered_feature(column: str) -> None:
    # An unordered category has no direction; an id or a metadata column is no feature.
    message = _invalid({"model.monotonic": {column: 1}})
    assert column in message
    assert "not numeric, boolean or ordered features" in message


def test_monotonic_direction_is_plus_or_minus_one() -> None:
    column = TABLE.ordered_features[0]
    assert f"model.monotonic.{column}" in _invalid({"model.monotonic": {column: 2}})


def test_sample_knobs_are_needed_only_for_the_sample(tmp_path: Path) -> None:
    message = _invalid({"data.source": "sample", "data.sample": DELETE})
    assert "data.sample is required when data.source is 'sample'" in message
    own = parse_params(set_dotted(raw_params(), {"data.source": "x.csv", "data.sample": DELETE}))
    assert own.data.sample is None


def test_gate_keys_must_be_guarded_metrics() -> None:
    assert "ml.nonsense" in _invalid({"gate.floors": {"ml.nonsense": 0.5}})
    # A neutral metric (neither better nor worse) cannot carry a floor.
    assert "business.contact_rate" in _invalid({"gate.floors": {"business.contact_rate": 0.5}})


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
            "mlops_template.pipeline.train",
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
