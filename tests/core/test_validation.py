"""How validation failures are summarised for people (pandera's failure cases, grouped)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from mlops_template.core import validation
from mlops_template.core.validation import WHOLE_TABLE, DataValidationError, summarize_failures


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
