"""The data contract: a corpus of corruptions is rejected (naming the column), the sample passes.

Unit tests cover how pandera's failure cases are summarised; the `data` tier runs the schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from mlops_template import schema, storage, validate
from mlops_template.params import Params
from mlops_template.sample import generate_customers
from mlops_template.validate import TABLE, DataValidationError, summarize_failures

Corruption = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture(scope="module")
def valid(params: Params) -> pd.DataFrame:
    return generate_customers(params.data.sample.model_copy(update={"n_rows": 400}))


# --- unit: summarising failure cases --------------------------------------------------------


def _case(context: str, column: str, check: str, value: Any, index: Any) -> dict[str, Any]:
    return {
        "schema_context": context,
        "column": column,
        "check": check,
        "check_number": None,
        "failure_case": value,
        "index": index,
    }


@pytest.mark.unit
def test_summarize_failures_groups_by_column_and_check() -> None:
    cases = pd.DataFrame(
        [
            _case("DataFrameSchema", "customers", "column_in_dataframe", "age", None),
            _case("DataFrameSchema", "customers", "column_in_schema", "colour", None),
            _case("DataFrameSchema", "customers", "at_least_1_rows", False, None),
            *[
                _case("Column", "tenure_months", "less_than_or_equal_to(120)", 200 + i, i)
                for i in range(8)
            ],
            _case("Column", "contract", "isin(...)", "weekly", 3),
            _case("Column", "contract", "isin(...)", "weekly", 4),
        ]
    )
    failures = {(f.column, f.check): f for f in summarize_failures(cases)}
    assert set(failures) == {
        ("age", "column_in_dataframe"),
        ("colour", "column_in_schema"),
        (TABLE, "at_least_1_rows"),
        ("tenure_months", "less_than_or_equal_to(120)"),
        ("contract", "isin(...)"),
    }
    tenure = failures["tenure_months", "less_than_or_equal_to(120)"]
    assert tenure.rows == 8
    assert len(tenure.examples) == len(tenure.example_rows) == validate.MAX_EXAMPLES
    assert tenure.examples[0] == 200
    contract = failures["contract", "isin(...)"]
    assert (contract.rows, contract.examples, contract.example_rows) == (2, ["weekly"], [3, 4])
    assert failures["age", "column_in_dataframe"].describe() == (
        "column 'age': missing (required by the schema)"
    )
    assert "unexpected column" in failures["colour", "column_in_schema"].describe()
    assert failures[TABLE, "at_least_1_rows"].describe().startswith("the table:")
    assert "in 8 row(s)" in tenure.describe()


@pytest.mark.unit
def test_validation_error_message_lists_every_failure() -> None:
    cases = pd.DataFrame(
        [_case("Column", "age", "ge(18)", 3, 0), _case("Column", "region", "isin", "mars", 1)]
    )
    err = DataValidationError("raw.parquet", summarize_failures(cases), cases)
    text = str(err)
    assert text.startswith("raw.parquet: 2 check(s) failed")
    assert "column 'age'" in text
    assert "column 'region'" in text


# --- data: the corruption corpus ------------------------------------------------------------


def _set(column: str, value: Any, row: int = 0) -> Corruption:
    def corrupt(df: pd.DataFrame) -> pd.DataFrame:
        df[column] = df[column].astype(object)
        df.loc[row, column] = value
        return df

    return corrupt


def _duplicate_id(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[1, schema.ID] = df.loc[0, schema.ID]
    return df


def _inconsistent_total(df: pd.DataFrame) -> pd.DataFrame:
    row = int(df.index[(df["tenure_months"] >= 12) & df["total_charges"].notna()][0])
    df.loc[row, "total_charges"] = 3 * df.loc[row, "tenure_months"] * df.loc[row, "monthly_charges"]
    return df


def _too_many_nulls(df: pd.DataFrame) -> pd.DataFrame:
    limit = schema.BY_NAME["total_charges"].max_null_fraction
    df.loc[df.index[: int(len(df) * (limit + 0.1))], "total_charges"] = np.nan
    return df


# (id, corruption, column named in the error (TABLE for table-level checks), text the message
# must contain)
CORPUS: list[tuple[str, Corruption, str, str]] = [
    ("wrong_dtype", _set("tenure_months", "twelve"), "tenure_months", "twelve"),
    ("out_of_range_high", _set("age", 150), "age", "150"),
    ("out_of_range_low", _set("tenure_months", -1), "tenure_months", "-1"),
    ("negative_monthly_charges", _set("monthly_charges", -20.0), "monthly_charges", "-20.0"),
    ("negative_total_charges", _set("total_charges", -1.0), "total_charges", "-1.0"),
    ("unknown_category", _set("contract", "weekly"), "contract", "weekly"),
    ("category_wrong_case", _set("payment_method", "Credit_Card"), "payment_method", "Credit_Card"),
    ("null_required_category", _set("region", None), "region", "not_nullable"),
    ("null_required_number", _set("support_calls", np.nan), "support_calls", "support_calls"),
    ("null_id", _set(schema.ID, None), schema.ID, "not_nullable"),
    ("duplicate_ids", _duplicate_id, schema.ID, "uniqueness"),
    ("bad_id_pattern", _set(schema.ID, "X-123"), schema.ID, "X-123"),
    ("label_not_0_1", _set(schema.LABEL, 2), schema.LABEL, "isin"),
    ("label_fractional", _set(schema.LABEL, 0.5), schema.LABEL, "0.5"),
    ("count_fractional", _set("num_services", 2.5), "num_services", "2.5"),
    ("missing_column", lambda df: df.drop(columns=["age"]), "age", "missing"),
    (
        "extra_column",
        lambda df: df.assign(favourite_colour="blue"),
        "favourite_colour",
        "not in the schema",
    ),
    ("empty_table", lambda df: df.iloc[:0], TABLE, "at_least_1_rows"),
    (
        "all_null_optional_column",
        lambda df: df.assign(satisfaction_score=np.nan),
        "satisfaction_score",
        "null_fraction",
    ),
    ("too_many_nulls", _too_many_nulls, "total_charges", "null_fraction"),
    ("inconsistent_total_charges", _inconsistent_total, TABLE, "total_charges"),
    ("infinite_value", _set("monthly_charges", np.inf), "monthly_charges", "finite"),
    (
        "minus_infinite_optional",
        _set("days_since_last_login", -np.inf),
        "days_since_last_login",
        "finite",
    ),
    ("bool_garbage", _set("paperless_billing", "maybe"), "paperless_billing", "maybe"),
    ("bool_number", _set("paperless_billing", 7), "paperless_billing", "is_boolean"),
]


@pytest.mark.data
def test_corpus_is_large_and_distinct() -> None:
    ids = [case[0] for case in CORPUS]
    assert len(ids) >= 15
    assert len(set(ids)) == len(ids)


@pytest.mark.data
@pytest.mark.parametrize(
    ("corrupt", "column", "text"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_schema_rejects_corruption(
    valid: pd.DataFrame, corrupt: Corruption, column: str, text: str
) -> None:
    frame = corrupt(valid.copy())
    with pytest.raises(DataValidationError) as info:
        validate.validate_customers(frame, source="raw.parquet")
    err = info.value
    message = str(err)
    named = {f.column for f in err.failures}
    assert column in named, f"expected a failure on {column!r}, got {named}:\n{message}"
    if column == TABLE:
        assert "the table" in message
    else:
        assert f"column '{column}'" in message
    assert text in message
    assert message.startswith("raw.parquet:")
    assert not err.cases.empty


@pytest.mark.data
def test_row_level_failures_point_at_the_row(valid: pd.DataFrame) -> None:
    frame = _set("age", 150, row=17)(valid.copy())
    with pytest.raises(DataValidationError) as info:
        validate.validate_customers(frame)
    [failure] = info.value.failures
    assert (failure.column, failure.rows, failure.example_rows, failure.examples) == (
        "age",
        1,
        [17],
        [150],
    )


@pytest.mark.data
def test_all_failures_are_reported_at_once(valid: pd.DataFrame) -> None:
    frame = _set("contract", "weekly", row=2)(_set("age", 12, row=5)(valid.copy()))
    frame = frame.drop(columns=["region"])
    with pytest.raises(DataValidationError) as info:
        validate.validate_customers(frame)
    assert {"contract", "age", "region"} <= {f.column for f in info.value.failures}


@pytest.mark.data
def test_schema_accepts_the_sample(valid: pd.DataFrame) -> None:
    before = valid.copy()
    validated = validate.validate_customers(valid)
    pd.testing.assert_frame_equal(validated, valid)
    pd.testing.assert_frame_equal(valid, before)  # the input is not modified


@pytest.mark.data
def test_schema_accepts_a_csv_round_trip(valid: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    valid.to_csv(path, index=False)
    validated = validate.validate_customers(storage.read_table(path))
    pd.testing.assert_frame_equal(validated, valid)


@pytest.mark.data
def test_text_booleans_are_parsed_not_coerced(valid: pd.DataFrame) -> None:
    # Casting text to bool makes every non-empty string True, "False" included.
    words = ["True", "false", "FALSE", "1", "0", True, False]
    frame = valid.head(len(words)).copy()
    frame["paperless_billing"] = pd.Series(words, dtype=object)
    validated = validate.validate_customers(frame)
    assert validated["paperless_billing"].dtype == bool
    assert validated["paperless_billing"].tolist() == [True, False, False, True, False, True, False]


@pytest.mark.data
def test_whole_floats_in_integer_columns_are_accepted(valid: pd.DataFrame) -> None:
    frame = valid.copy()
    frame["support_calls"] = frame["support_calls"].astype(float)
    validated = validate.validate_customers(frame)
    assert validated["support_calls"].dtype == np.int64
    assert validated["support_calls"].tolist() == valid["support_calls"].tolist()


@pytest.mark.data
def test_scoring_schema_needs_no_label(valid: pd.DataFrame) -> None:
    scoring = schema.build_schema(with_label=False)
    scoring.validate(valid.drop(columns=[schema.LABEL]), lazy=True)
    assert schema.LABEL not in scoring.columns


@pytest.mark.data
def test_empty_file_is_rejected_when_read(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(b"")
    with pytest.raises(storage.InputError, match=r"customers\.csv: the file is empty"):
        storage.read_table(path)


@pytest.mark.data
def test_header_only_csv_is_an_empty_table(valid: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    valid.iloc[:0].to_csv(path, index=False)
    with pytest.raises(DataValidationError, match="at_least_1_rows"):
        validate.validate_customers(storage.read_table(path))


# --- data: the validate stage end to end (in process) --------------------------------------


def _stage_args(tmp_path: Path, raw: Path) -> list[str]:
    return [
        "--params",
        str(ROOT / "params.yaml"),
        "--raw",
        str(raw),
        "--out",
        str(tmp_path / "validated.parquet"),
        "--summary",
        str(tmp_path / "summary.json"),
        "--errors",
        str(tmp_path / "errors.json"),
    ]


@pytest.mark.data
def test_validate_stage_fails_with_report_and_writes_nothing_else(
    valid: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = tmp_path / "raw.parquet"
    storage.write_parquet(raw, _set("region", "atlantis", row=9)(valid.copy()))
    with caplog.at_level(logging.ERROR):
        assert validate.main(_stage_args(tmp_path, raw)) == 1
    assert "validate failed" in caplog.text
    assert "column 'region'" in caplog.text
    assert "atlantis" in caplog.text
    report = storage.read_json(tmp_path / "errors.json")
    assert report["source"] == str(raw)
    assert [f["column"] for f in report["failed_checks"]] == ["region"]
    assert report["failure_cases"][0]["index"] == 9
    assert not (tmp_path / "validated.parquet").exists()
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.data
def test_validate_stage_success_writes_summary_and_clears_old_report(
    valid: pd.DataFrame, tmp_path: Path
) -> None:
    raw = tmp_path / "raw.parquet"
    storage.write_parquet(raw, valid)
    (tmp_path / "errors.json").write_text("{}", encoding="utf-8")  # from an earlier failure
    assert validate.main(_stage_args(tmp_path, raw)) == 0
    assert not (tmp_path / "errors.json").exists()
    pd.testing.assert_frame_equal(storage.read_table(tmp_path / "validated.parquet"), valid)
    summary = storage.read_json(tmp_path / "summary.json")
    assert summary["rows"] == len(valid)
    assert summary["label_rate"] == pytest.approx(valid[schema.LABEL].mean(), abs=1e-6)
    assert set(summary["null_rate"]) == {c.name for c in schema.COLUMNS if c.nullable}


@pytest.mark.data
def test_validate_stage_on_an_empty_file_exits_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_bytes(b"")
    with caplog.at_level(logging.ERROR):
        assert validate.main(_stage_args(tmp_path, raw)) == 1
    assert "raw.csv: the file is empty" in caplog.text
