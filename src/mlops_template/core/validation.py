"""Checking a table against the schema, and saying what is wrong in words.

All checks run at once (pandera's lazy validation); `DataValidationError` lists one line per
failed check (column, check, rows affected, examples) and keeps every failure case for the
full report. The validate stage, batch scoring and monitoring's quality check share it.

Records to score are checked one by one (`validate_records`): the rows that break a rule are
set apart with the reason, the others go on (what batch scoring needs; the service applies
the same rules through its request model).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import pandera.errors
import pandera.pandas as pa

from mlops_template.core.errors import InputError
from mlops_template.core.schema import TABLE
from mlops_template.core.table import NULL_FRACTION_CHECK, Table

MAX_EXAMPLES = 5
WHOLE_TABLE = "<table>"  # the "column" of a failure that is about the whole table
# Checks about a whole column (missing / extra) carry the column name as the failure case.
_COLUMN_LEVEL_CHECKS = {"column_in_dataframe", "column_in_schema"}


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed check, summarised for a human."""

    column: str
    check: str
    rows: int
    examples: list[Any]
    example_rows: list[int]

    def describe(self) -> str:
        where = f"column '{self.column}'" if self.column != WHOLE_TABLE else "the table"
        text = f"{where}: check '{self.check}' failed"
        if self.check == "column_in_dataframe":
            return f"{where}: missing (required by the schema)"
        if self.check == "column_in_schema":
            return f"{where}: not in the schema (unexpected column)"
        if self.rows:
            return (
                f"{text} in {self.rows:,} row(s); e.g. rows {self.example_rows} "
                f"with values {self.examples}"
            )
        # A check about the whole column, or one that could not run on bad values.
        return f"{text}: {self.examples[0]}" if self.examples else text


class DataValidationError(InputError):
    """The table breaks the data contract; `failures` says where, `cases` lists every case."""

    def __init__(self, source: str, failures: list[Failure], cases: pd.DataFrame) -> None:
        self.source = source
        self.failures = failures
        self.cases = cases
        lines = "\n  - ".join(f.describe() for f in failures)
        super().__init__(f"{source}: {len(failures)} check(s) failed:\n  - {lines}")


def _plain(value: Any) -> Any:
    """A JSON-friendly version of a failure case value."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def summarize_failures(cases: pd.DataFrame) -> list[Failure]:
    """Group pandera's failure cases into one `Failure` per (column, check)."""
    cases = cases.copy()
    column_level = cases["check"].isin(_COLUMN_LEVEL_CHECKS)
    table_level = (cases["schema_context"] == "DataFrameSchema") & ~column_level
    cases["column"] = cases["column"].where(~column_level, cases["failure_case"].astype(str))
    cases["column"] = (
        cases["column"].where(~table_level, WHOLE_TABLE).fillna(WHOLE_TABLE).astype(str)
    )
    cases["check"] = cases["check"].astype(str)
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        rows = group["index"].dropna()
        failures.append(
            Failure(
                column=str(column),
                check=str(check),
                rows=int(rows.nunique()),
                examples=[]
                if check in _COLUMN_LEVEL_CHECKS
                else [
                    _plain(v) for v in group["failure_case"].drop_duplicates().head(MAX_EXAMPLES)
                ],
                example_rows=[int(i) for i in rows.drop_duplicates().head(MAX_EXAMPLES)],
            )
        )
    return failures


def validate_table(
    frame: pd.DataFrame,
    source: str = "table",
    *,
    table: Table = TABLE,
    with_label: bool = True,
    table_checks: bool = True,
) -> pd.DataFrame:
    """The table with the schema's dtypes, or `DataValidationError` naming every problem.

    `with_label=False, table_checks=False` validates records to score (what the service's
    contract applies, row by row).
    """
    schema = table.pandera(with_label=with_label, table_checks=table_checks)
    try:
        return schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        raise DataValidationError(source, summarize_failures(cases), cases) from None


def failure_report(err: DataValidationError) -> dict[str, Any]:
    cases = err.cases.astype(object).where(err.cases.notna(), None)
    return {
        "source": err.source,
        "failed_checks": [asdict(f) for f in err.failures],
        "failure_cases": [
            {k: _plain(v) for k, v in row.items()} for row in cases.to_dict("records")
        ],
    }


# --- records to score, one at a time ----------------------------------------------------------

ROW_FAILURE_COLUMNS = ("index", "column", "check", "value")


@functools.cache
def record_schema(table: Table = TABLE) -> pa.DataFrameSchema:
    """The rules one record to score must obey: each input column's type, bounds, categories,
    pattern and nullability (what the service's request contract applies).

    Rules about many rows (unique ids, a column's share of nulls, the row count) or across
    columns (the table checks) are not a single record's to break, and the label is not an
    input. Other columns are left alone (select the input columns first).
    """
    full = table.pandera(with_label=False, table_checks=False)
    names = [c.name for c in table.input_columns]
    per_record = full.update_columns(
        {
            name: {
                "unique": False,
                "checks": [
                    c
                    for c in full.columns[name].checks
                    if not str(c.name).startswith(NULL_FRACTION_CHECK)
                ],
            }
            for name in names
        }
    ).select_columns(names)
    return pa.DataFrameSchema(
        per_record.columns, parsers=full.parsers, strict=False, name=f"{table.name} records"
    )


def validate_records(
    frame: pd.DataFrame, source: str = "records", *, table: Table = TABLE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check each row of `frame` against `record_schema`: (the valid rows with the schema's
    dtypes and their index, one row per failure: `index`, `column`, `check`, `value`).

    Invalid rows are set apart and the rest checked again, until what is left passes: a check
    that could not run on a column holding a wrong type runs once that row is gone. A problem
    no row explains (a missing input column) raises `DataValidationError`.
    """
    schema = record_schema(table)
    found: list[pd.DataFrame] = []
    rest = frame
    while True:
        try:
            valid = schema.validate(rest, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            per_row = cases[cases["index"].notna()]
            if per_row.empty:
                raise DataValidationError(source, summarize_failures(cases), cases) from None
            found.append(per_row)
            rest = rest.drop(index=per_row["index"].unique())
            continue
        break
    if not found:
        return valid, pd.DataFrame(columns=list(ROW_FAILURE_COLUMNS))
    cases = pd.concat(found, ignore_index=True)
    failures = pd.DataFrame(
        {
            "index": cases["index"].to_numpy(),
            "column": cases["column"].astype(str).to_numpy(),
            "check": cases["check"].astype(str).to_numpy(),
        }
    )
    # As given, in an object column: inferred, None would become NaN among numbers or text.
    failures["value"] = pd.Series([_plain(v) for v in cases["failure_case"]], dtype=object)
    return valid, failures
