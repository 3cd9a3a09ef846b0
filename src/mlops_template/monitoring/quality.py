"""Data quality of a production window: the schema's own checks on the logged inputs.

The records the service scored are checked as a table against `core.validation`, the same
rules the validate stage applies to training data (types, bounds, categories, patterns,
nullability, each nullable column's largest share of nulls, the cross-column rules), so a
column that suddenly arrives all null, or out of range, is reported by name with counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlops_template.core.table import NULL_FRACTION_CHECK, Table
from mlops_template.core.validation import WHOLE_TABLE, DataValidationError, validate_table


@dataclass(frozen=True)
class Problem:
    column: str  # the column, or WHOLE_TABLE for a rule across columns
    columns: list[str]  # the columns the rule involves
    check: str
    rows: int  # records affected (for a share-of-nulls rule: the records with a null)
    share: float
    examples: list[object]
    message: str


@dataclass(frozen=True)
class Quality:
    passed: bool
    records: int
    problems: list[Problem]
    nulls: dict[str, int]  # missing values per input column


def check_quality(inputs: pd.DataFrame, table: Table) -> Quality:
    """The schema's checks on `inputs` (one row per record, the input columns)."""
    nulls = {str(c): int(inputs[c].isna().sum()) for c in inputs.columns}
    n = len(inputs)
    try:
        validate_table(inputs, source="the production window", table=table, with_label=False)
    except DataValidationError as err:
        failures = err.failures
    else:
        return Quality(True, n, [], nulls)
    checks = {c.name: list(c.columns) for c in table.checks}
    problems = []
    for f in failures:
        rows, message = f.rows, f.describe()
        if f.check.startswith(NULL_FRACTION_CHECK):
            limit = table.by_name[f.column].max_null_fraction
            rows = nulls.get(f.column, 0)
            message = (
                f"column '{f.column}': missing in {rows:,} of {n:,} records ({rows / n:.0%}); "
                f"the schema allows at most {limit:.0%}"
            )
        elif f.column == WHOLE_TABLE and f.check in checks:
            message = (
                f"rule '{f.check}' ({', '.join(checks[f.check])}) broken in {rows:,} record(s)"
            )
        problems.append(
            Problem(
                column=f.column,
                columns=checks.get(f.check, [f.column]),
                check=f.check,
                rows=rows,
                share=rows / n if n else 0.0,
                examples=list(f.examples),
                message=message,
            )
        )
    problems.sort(key=lambda p: -p.rows)
    return Quality(False, n, problems, nulls)
