"""Stage 2, validate: check the raw table against the data contract in the schema.

All checks run at once. On failure the stage prints one line per failed check (column,
check, rows affected, examples), writes the full list of failure cases to
`paths.validation_errors`, and exits non-zero, so DVC stops before split/train/evaluate and
the current model, metrics and their dvc.lock entries stay as they are. On success it writes
the coerced table and a data summary (a DVC metric: rows, label rate, null rates, and the
schema it was validated against, which the pull-request report compares).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table
from mlops_template.core.validation import DataValidationError, failure_report, validate_table

log = logging.getLogger(__name__)


def data_summary(frame: pd.DataFrame, table: Table = TABLE) -> dict[str, Any]:
    """Rows, label rate, null rates and the schema of a validated table."""
    return {
        "rows": len(frame),
        "label_rate": round(float(table.target(frame).mean()), 6) if len(frame) else 0.0,
        "null_rate": {
            c.name: round(float(frame[c.name].isna().mean()), 6)
            for c in table.columns
            if c.nullable
        },
        "schema": table.describe(),
    }


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", required=True, help="raw table written by ingest")
    p.add_argument("--out", required=True, help="validated table (.parquet)")
    p.add_argument("--summary", required=True, help="data summary metric (.json)")
    p.add_argument("--errors", required=True, help="full failure report on failure (.json)")


def _main(args: argparse.Namespace, params: Params) -> None:
    raw = files.read_table(args.raw)
    # Name the team's own file too: rows keep their order from it to data/raw.
    origin = args.raw if params.data.uses_sample else f"{args.raw} (from {params.data.source})"
    try:
        validated = validate_table(raw, source=origin)
    except DataValidationError as err:
        files.write_json(args.errors, failure_report(err))
        raise InputError(f"{err}\nfull report: {args.errors}") from None
    Path(args.errors).unlink(missing_ok=True)
    files.write_parquet(args.out, validated)
    files.write_json(args.summary, data_summary(validated))
    log.info("%s rows passed all checks; wrote %s", f"{len(validated):,}", args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("validate", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
