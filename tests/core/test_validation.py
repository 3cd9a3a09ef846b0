"""How validation failures are summarised for people (pandera's failure cases, grouped)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlops_template.core import validation
from mlops_template.core.table import Column, Kind, Label, Table
from mlops_template.core.validation import (
    WHOLE_TABLE,
    DataValidationError,
    summarize_failures,
    validate_records,
)


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
            _case("DataFrameSchema", "t", "column_in_dataframe", "size", None),
            _case("DataFrameSchema", "t", "column_in_schema", "colour", None),
            _case("DataFrameSchema", "t", "at_least_1_rows", False, None),
            *[_case("Column", "count", "less_than_or_equal_to(120)", 200 + i, i) for i in range(8)],
            _case("Column", "kind", "isin(...)", "weekly", 3),
            _case("Column", "kind", "isin(...)", "weekly", 4),
        ]
    )
    failures = {(f.column, f.check): f for f in summarize_failures(cases)}
    assert set(failures) == {
        ("size", "column_in_dataframe"),
        ("colour", "column_in_schema"),
        (WHOLE_TABLE, "at_least_1_rows"),
        ("count", "less_than_or_equal_to(120)"),
        ("kind", "isin(...)"),
    }
    tenure = failures["count", "less_than_or_equal_to(120)"]
    assert tenure.rows == 8
    assert len(tenure.examples) == len(tenure.example_rows) == validation.MAX_EXAMPLES
    assert tenure.examples[0] == 200
    kind = failures["kind", "isin(...)"]
    assert (kind.rows, kind.examples, kind.example_rows) == (2, ["weekly"], [3, 4])
    assert failures["size", "column_in_dataframe"].describe() == (
        "column 'size': missing (required by the schema)"
    )
    assert "unexpected column" in failures["colour", "column_in_schema"].describe()
    assert failures[WHOLE_TABLE, "at_least_1_rows"].describe().startswith("the table:")
    assert "in 8 row(s)" in tenure.describe()


@pytest.mark.unit
def test_validation_error_message_lists_every_failure() -> None:
    cases = pd.DataFrame(
        [_case("Column", "size", "ge(1)", 3, 0), _case("Column", "area", "isin", "mars", 1)]
    )
    err = DataValidationError("raw.parquet", summarize_failures(cases), cases)
    text = str(err)
    assert text.startswith("raw.parquet: 2 check(s) failed")
    assert "column 'size'" in text
    assert "column 'area'" in text


@pytest.mark.unit
def test_validate_records_sets_apart_each_bad_row_and_only_those() -> None:
    table = Table(
        "t",
        (
            Column("key", Kind.ID, "id", dtype="str"),
            Column("n", Kind.NUMERIC, "a count", dtype="int64", min=0, max=10),
            Column("x", Kind.NUMERIC, "a share", nullable=True, max_null_fraction=0.1),
        ),
        Label("y", positive=1, negative=0, description="label"),
    )
    # A duplicate key and 75 % nulls in x break table rules, not a record's: both are kept.
    frame = pd.DataFrame(
        {"key": ["a", "a", "b", "c"], "n": [1, "two", 11, 3], "x": [None] * 3 + [1.0]}
    )
    valid, failures = validate_records(frame, table=table)
    assert valid.index.tolist() == [0, 3]
    assert valid["n"].dtype == "int64"
    # "two" cannot be a number; only once it is set apart can the bound be checked on 11.
    found = set(zip(failures["index"], failures["column"], failures["check"], strict=True))
    assert (1, "n", "coerce_dtype('int64')") in found
    assert (2, "n", "less_than_or_equal_to(10)") in found
    assert {i for i, *_ in found} == {1, 2}
    with pytest.raises(DataValidationError, match="'n': missing"):
        validate_records(frame.drop(columns=["n"]), table=table)
