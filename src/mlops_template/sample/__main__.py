"""Write a customer base to score (no label): `python -m mlops_template.sample` (make sample).

    python -m mlops_template.sample --rows 3500000 --out data/customers.parquet
    python -m mlops_template.sample --rows 10000 --out customers.csv

The knobs (seed, label noise, drift) come from params.yaml `data.sample`; `--rows` defaults to
its `n_rows`. Parquet is written one row group per chunk; the file appears only when complete.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.sample.base import MAX_ROWS, customer_base
from mlops_template.sample.generator import parse_sample

log = logging.getLogger(__name__)


def write_base(frames: Iterable[pd.DataFrame], out: Path) -> int:
    """Write the chunks to `out` (.parquet or .csv) atomically; the number of rows."""
    fmt = files.table_format(str(out))
    rows = 0
    with files.atomic_path(out) as tmp:
        writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        try:
            for frame in frames:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = (
                        pq.ParquetWriter(tmp, table.schema)
                        if fmt == "parquet"
                        else pacsv.CSVWriter(tmp, table.schema)
                    )
                writer.write_table(table)
                rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
    return rows


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the file to write (.parquet or .csv)")
    p.add_argument("--rows", type=int, help="records (default: data.sample.n_rows)")
    p.add_argument("--chunk-rows", type=int, default=500_000, help="default: %(default)s")


def _main(args: argparse.Namespace, params: Params) -> None:
    cfg = parse_sample(params.data.sample)
    rows = args.rows if args.rows is not None else cfg.n_rows
    if not 1 <= rows <= MAX_ROWS or args.chunk_rows < 1:
        raise InputError(f"--rows must be 1 to {MAX_ROWS:,} and --chunk-rows at least 1")
    written = write_base(customer_base(cfg, rows, args.chunk_rows), Path(args.out))
    log.info("wrote %s unlabelled sample records to %s", f"{written:,}", args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("sample", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
