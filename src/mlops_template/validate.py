"""Stage 2, validate: check the raw table against the data contract in `schema`.

All checks run at once (lazy validation). On failure the stage prints one line per failed
check (column, check, rows affected, examples), writes the full list of failure cases to
`paths.validation_errors`, and exits non-zero, so DVC stops before split/train/evaluate and the
current model, metrics and their dvc.lock entries stay as they are. On success it writes the
coerced table and a small data summary (a DVC metric).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.errors

from mlops_template import cli, schema, storage
from mlops_template.params import Params

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
TABLE = "<table>"
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
        where = f"column '{self.column}'" if self.column != TABLE else "the table"
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


class DataValidationError(ValueError):
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
    cases["column"] = cases["column"].where(~table_level, TABLE).fillna(TABLE).astype(str)
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


def validate_customers(frame: pd.DataFrame, source: str = "table") -> pd.DataFrame:
    """The table with the schema's dtypes, or `DataValidationError` naming every problem."""
    try:
        return schema.CUSTOMERS.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        raise DataValidationError(source, summarize_failures(cases), cases) from None


def data_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Rows, label rate and null rates of a validated table (a DVC metric)."""
    return {
        "rows": len(frame),
        "label_rate": round(float(frame[schema.LABEL].mean()), 6),
        "null_rate": {
            c.name: round(float(frame[c.name].isna().mean()), 6)
            for c in schema.COLUMNS
            if c.nullable
        },
    }


def failure_report(err: DataValidationError) -> dict[str, Any]:
    cases = err.cases.astype(object).where(err.cases.notna(), None)
    return {
        "source": err.source,
        "failed_checks": [asdict(f) for f in err.failures],
        "failure_cases": [
            {k: _plain(v) for k, v in row.items()} for row in cases.to_dict("records")
        ],
    }


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", required=True, help="raw table written by ingest")
    p.add_argument("--out", required=True, help="validated table (.parquet)")
    p.add_argument("--summary", required=True, help="data summary metric (.json)")
    p.add_argument("--errors", required=True, help="full failure report on failure (.json)")


def _main(args: argparse.Namespace, params: Params) -> None:
    raw = storage.read_table(args.raw)
    # Name the team's own file too: rows keep their order from it to data/raw.
    origin = args.raw if params.data.uses_sample else f"{args.raw} (from {params.data.source})"
    try:
        validated = validate_customers(raw, source=origin)
    except DataValidationError as err:
        storage.write_json(args.errors, failure_report(err))
        raise storage.InputError(f"{err}\nfull report: {args.errors}") from None
    Path(args.errors).unlink(missing_ok=True)
    storage.write_parquet(args.out, validated)
    storage.write_json(args.summary, data_summary(validated))
    log.info("%s rows passed all checks; wrote %s", f"{len(validated):,}", args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("validate", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
