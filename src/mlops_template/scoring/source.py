"""The input of a scoring run, read in chunks with pyarrow so that memory stays flat.

An input is a CSV file (optionally gzipped), a Parquet file, or a directory of Parquet files
(read in file-name order, as one table). Only the scoring contract's columns are read; any
other column (the label, extra export columns) is ignored, and said so once.

CSV values are read as text and converted by the schema's rules, so one bad value sets apart
one record rather than failing the file, and both engines convert them the same way. In a
CSV, an empty field is a missing value. A CSV is UTF-8, with or without a byte-order mark.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlops_template.core.errors import InputError
from mlops_template.core.table import Table

log = logging.getLogger(__name__)

PARQUET_SUFFIXES: Final = (".parquet", ".pq")
CSV_SUFFIXES: Final = (".csv", ".csv.gz")
CSV_BLOCK_BYTES: Final = 8 * 1024**2
Format = Literal["csv", "parquet"]


@dataclass(frozen=True)
class Columns:
    """Which of the contract's input columns an input has, and what else it has."""

    read: tuple[str, ...]  # contract columns present in the input (read, in the input's order)
    absent: tuple[str, ...]  # nullable contract columns it lacks: all missing
    ignored: tuple[str, ...]  # columns outside the contract: not read


@dataclass(frozen=True)
class Source:
    """An input to score: its files, format, columns and (for Parquet) its row count."""

    path: Path
    format: Format
    files: tuple[Path, ...]
    columns: tuple[str, ...]  # every column of the input, in its order
    rows: int | None  # None for CSV (known only once read)
    bytes: int

    def __str__(self) -> str:
        return str(self.path)


def _format(path: Path) -> Format:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise InputError(
        f"{path}: cannot tell the format; give a {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)} "
        "file or a directory of Parquet files"
    )


def _parquet_files(directory: Path) -> tuple[Path, ...]:
    """The directory's Parquet files in name order (hidden and `_`-prefixed files skipped, as
    Spark and pyarrow do: `_SUCCESS`, `.crc`)."""
    found = sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "_"))
        and p.name.lower().endswith(PARQUET_SUFFIXES)
    )
    if not found:
        raise InputError(f"{directory}: no Parquet files ({', '.join(PARQUET_SUFFIXES)}) in it")
    return tuple(found)


def _open_text(path: Path) -> io.TextIOBase:
    """The CSV as text. `utf-8-sig` drops a leading byte-order mark (Excel's "CSV UTF-8"
    writes one), as pyarrow does when it reads the rows: else the first column's name would
    start with an invisible U+FEFF and not be found."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def csv_header(path: Path) -> tuple[str, ...]:
    try:
        with _open_text(path) as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot be read as CSV: {exc}") from None
    if not header:
        raise InputError(f"{path}: the file is empty (no header)")
    return tuple(header)


def open_source(path: str | Path) -> Source:
    """What `path` holds, from its header or Parquet footers (no rows are read)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found")
    if path.is_dir():
        files, fmt = _parquet_files(path), "parquet"
    else:
        files, fmt = (path,), _format(path)
    size = sum(f.stat().st_size for f in files)
    if fmt == "csv":
        return Source(path, "csv", files, csv_header(path), None, size)
    rows = 0
    columns: tuple[str, ...] = ()
    for f in files:
        try:
            meta = pq.read_metadata(f)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{f}: cannot be read as Parquet: {exc}") from None
        rows += meta.num_rows
        names = tuple(meta.schema.to_arrow_schema().names)
        columns = columns or names
    return Source(path, "parquet", files, columns, rows, size)


def plan_columns(available: Sequence[str], table: Table, where: str) -> Columns:
    """Which columns to read; a required input column that is not there is an error."""
    contract = {c.name: c for c in table.input_columns}
    missing = [c.name for c in table.input_columns if not c.nullable and c.name not in available]
    if missing:
        raise InputError(
            f"{where}: missing required column(s) {missing} of the scoring contract "
            f"(core/schema.py: the id, when there is one, and the features)"
        )
    return Columns(
        read=tuple(n for n in available if n in contract),
        absent=tuple(c.name for c in table.input_columns if c.name not in available),
        ignored=tuple(n for n in available if n not in contract),
    )


def describe_columns(columns: Columns, source: Source) -> None:
    """Say once what is not read, and which optional columns are missing."""
    if columns.ignored:
        log.info(
            "%s: ignoring %d column(s) outside the scoring contract: %s",
            source,
            len(columns.ignored),
            ", ".join(columns.ignored),
        )
    if columns.absent:
        log.warning(
            "%s: no column(s) %s: nullable, so every record is scored with them missing",
            source,
            ", ".join(columns.absent),
        )


def csv_convert_options(names: Sequence[str]) -> pacsv.ConvertOptions:
    """Read the named columns as text; an empty, unquoted field is a missing value."""
    return pacsv.ConvertOptions(
        include_columns=list(names),
        column_types={n: pa.string() for n in names},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )


@dataclass(frozen=True)
class Chunk:
    """Rows `start` .. `start + len(frame)` of the input; `done` is the progress so far (rows
    for Parquet, bytes read for CSV)."""

    start: int
    frame: pd.DataFrame
    done: int


def _csv_batches(source: Source, names: Sequence[str]) -> Iterator[tuple[pa.RecordBatch, int]]:
    path = source.files[0]
    raw = pa.OSFile(str(path))
    stream = pa.CompressedInputStream(raw, "gzip") if path.name.lower().endswith(".gz") else raw
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=csv_convert_options(names),
        )
        for batch in reader:
            yield batch, raw.tell()
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: cannot be read as CSV: {exc}") from None
    finally:
        stream.close()


def _parquet_batches(
    source: Source, names: Sequence[str], batch_rows: int
) -> Iterator[tuple[pa.RecordBatch, int]]:
    done = 0
    first: pa.Schema | None = None
    for path in source.files:
        try:
            pf = pq.ParquetFile(path, buffer_size=1024**2, pre_buffer=False)
            schema = pf.schema_arrow
            lacking = [n for n in names if n not in schema.names]
            if lacking:
                raise InputError(f"{path}: no column(s) {lacking} (the first file has them)")
            if first is None:
                first = schema
            differ = [
                f"{n} ({schema.field(n).type}, not {first.field(n).type})"
                for n in names
                if schema.field(n).type != first.field(n).type
            ]
            if differ:
                raise InputError(
                    f"{path}: column type(s) differ from the first file's: {', '.join(differ)}"
                )
            for batch in pf.iter_batches(batch_size=batch_rows, columns=list(names)):
                done += batch.num_rows
                yield batch, done
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{path}: cannot be read as Parquet: {exc}") from None


def read_chunks(source: Source, columns: Columns, chunk_rows: int) -> Iterator[Chunk]:
    """The input's contract columns, `chunk_rows` rows at a time (the last chunk may be
    shorter), as pandas frames; at most about one chunk is held at once."""
    batches = (
        _csv_batches(source, columns.read)
        if source.format == "csv"
        else _parquet_batches(source, columns.read, chunk_rows)
    )
    pending: list[pa.RecordBatch] = []
    held = start = done = 0
    for batch, done in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield Chunk(start, table.slice(0, chunk_rows).to_pandas(), done)
            start += chunk_rows
            rest = table.slice(chunk_rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield Chunk(start, pa.Table.from_batches(pending).to_pandas(), done)
