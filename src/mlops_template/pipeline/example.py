"""Stage 6, example: the example request, drawn from the held-out test set.

`paths.example` (git-tracked) is the one example request: the README shows it, the service
tests and the container smoke test send it, the bento carries it. Because the pipeline writes
it from the data, it always fits the schema, also after a team swaps in its own table. It
holds `example.n_records` records (the id and the features only), and shows both ways to send
an unknown value of a nullable column: null, or the field left out.

These are real rows of the test set: if they are personal data, keep the id out of the
features (it never is one) and mark such columns `pii=True` in the schema, so that they are
not part of a request at all.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.params import Example, Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """A JSON value of the type the data has (numpy scalars to Python, NaN to null)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def example_request(test: pd.DataFrame, cfg: Example, table: Table = TABLE) -> dict[str, Any]:
    """`cfg.n_records` records of `test` as a `/predict` request body."""
    rows = test.sample(n=min(cfg.n_records, len(test)), random_state=cfg.seed)
    columns = [c.name for c in table.input_columns]
    records = [{name: _plain(row[name]) for name in columns} for _, row in rows.iterrows()]
    nullable = [c.name for c in table.input_columns if c.nullable]
    if nullable and len(records) >= 2:
        records[1][nullable[0]] = None  # unknown, sent as null
    if nullable and len(records) >= 3:
        del records[2][nullable[-1]]  # unknown, left out
    return {"records": records}


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test", required=True)
    p.add_argument("--out", required=True, help="the example request (.json)")


def _main(args: argparse.Namespace, params: Params) -> None:
    request = example_request(files.read_table(args.test), params.example)
    files.write_json(args.out, request)
    log.info("wrote %s records to %s", len(request["records"]), args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("example", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
