"""The output of a scoring run: one directory, written whole or not at all.

    OUTPUT/scores.parquet      the key, `probability`, `contact` of every valid record
    OUTPUT/quarantine.parquet  the key (as given), `reason`, `columns` of every invalid one
    OUTPUT/summary.json        the campaign summary (`campaign.py`)

Everything is written into a temporary directory next to OUTPUT and renamed onto it at the
end, so a failed or stopped run leaves no half-written file, and a previous output stays as it
was. A previous output is first renamed to `.OUTPUT.old` next to it (stop signals held off
during the two renames); if a run is killed in between, the next run puts it back (or removes
it, when the new output made it there). Both Parquet files carry the model's version, sha256
and threshold in their key-value metadata.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_template.core import io as files
from mlops_template.core import stopping
from mlops_template.core.errors import InputError
from mlops_template.core.model import LoadedModel
from mlops_template.core.table import Table
from mlops_template.scoring.score import COLUMNS, CONTACT, PROBABILITY, REASON, ScoredChunk

log = logging.getLogger(__name__)

SCORES: Final = "scores.parquet"
QUARANTINE: Final = "quarantine.parquet"
SUMMARY: Final = "summary.json"
OUTPUT_FILES: Final = (SCORES, QUARANTINE, SUMMARY)


def check_target(target: Path) -> None:
    """Fail before any work if `target` cannot take the output: it may be absent, an empty
    directory or a previous scoring output (replaced at the end), nothing else."""
    if not target.exists():
        return
    if not target.is_dir():
        raise InputError(f"{target}: exists and is not a directory; OUTPUT is a directory")
    if any(target.iterdir()) and not (target / SUMMARY).is_file():
        raise InputError(
            f"{target}: a non-empty directory that is not a scoring output (no {SUMMARY}); "
            "refusing to replace it"
        )


def previous_output(target: Path) -> Path:
    """Where a previous output waits while the new one is renamed onto `target`."""
    return target.with_name(f".{target.name}.old")


def recover(target: Path) -> None:
    """Finish a replacement that a killed run left half-done: put the previous output back when
    `target` is gone, remove it when the new output made it to `target`."""
    old = previous_output(target)
    if not old.is_dir():
        return
    if target.exists():
        log.info("%s: removing %s, left by an earlier run after replacing it", target, old.name)
        shutil.rmtree(old, ignore_errors=True)
    else:
        log.warning("%s: putting back the previous output (a run was stopped replacing it)", target)
        old.rename(target)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary directory next to `target`; on success it replaces `target`, on any
    failure (or stop) it is removed and `target` is left as it was."""
    recover(target)
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~files.umask())
        check_target(target)  # unchanged meanwhile
        stopping.check()  # never replace the output after a stop
        if not target.exists():
            tmp.rename(target)
            return
        old = previous_output(target)
        with files.stop_signals_held():  # a stop waits until both renames are done
            target.rename(old)
            try:
                tmp.rename(target)
            except BaseException:
                old.rename(target)
                raise
        shutil.rmtree(old, ignore_errors=True)  # what is left, the next run removes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def key_type(table: Table) -> pa.DataType:
    return pa.string() if table.id is not None and table.id.dtype == "str" else pa.int64()


def scores_schema(table: Table) -> pa.Schema:
    return pa.schema(
        [
            pa.field(table.key, key_type(table), nullable=False),
            pa.field(PROBABILITY, pa.float64(), nullable=False),
            pa.field(CONTACT, pa.bool_(), nullable=False),
        ]
    )


def quarantine_schema(table: Table) -> pa.Schema:
    # An invalid id is kept as the input gave it: text, or missing.
    key = pa.string() if table.id is not None else pa.int64()
    return pa.schema(
        [
            pa.field(table.key, key),
            pa.field(REASON, pa.string(), nullable=False),
            pa.field(COLUMNS, pa.list_(pa.string()), nullable=False),
        ]
    )


def model_metadata(model: LoadedModel) -> dict[str, str]:
    """What every output file says about the model that scored it."""
    return {
        "model_version": model.version,
        "model_sha256": model.sha256,
        "model_threshold": repr(model.threshold),
    }


class ParquetSink:
    """One Parquet file, written a chunk (row group) at a time."""

    def __init__(self, path: Path, schema: pa.Schema, metadata: dict[str, str]) -> None:
        self.schema = schema.with_metadata(metadata)
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.writer.write_table(
                pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
            )

    def close(self) -> None:
        self.writer.close()


class Outputs:
    """The scores and quarantine files of one run, in a (temporary) output directory."""

    def __init__(self, directory: Path, model: LoadedModel) -> None:
        meta = model_metadata(model)
        self.scores = ParquetSink(directory / SCORES, scores_schema(model.table), meta)
        self.quarantine = ParquetSink(directory / QUARANTINE, quarantine_schema(model.table), meta)

    def write(self, chunk: ScoredChunk) -> None:
        self.scores.write(chunk.scores)
        self.quarantine.write(chunk.quarantine)

    def close(self) -> None:
        self.scores.close()
        self.quarantine.close()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
