"""THE scoring function: a chunk of records in, their scores and the quarantined rows out.

Both engines call `score_chunk` on every chunk: the in-process engine on the chunks it reads
with pyarrow, Spark on the Arrow batches `mapInPandas` hands each executor. The rules are the
service's (`core.validation.record_schema`: types, bounds, categories, patterns, nullability of
the input columns; no label, no rule across rows); the model is the hash-checked one
(`core.model.LoadedModel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from mlops_template.core.model import LoadedModel
from mlops_template.core.table import Table
from mlops_template.core.validation import validate_records

PROBABILITY: Final = "probability"
CONTACT: Final = "contact"
REASON: Final = "reason"  # quarantine: why the record was not scored, in words
COLUMNS: Final = "columns"  # quarantine: the columns that broke a rule
# pandera's names for a missing value, a value of the wrong type and the dtype check after it.
_NOT_NULLABLE: Final = "not_nullable"
_COERCE: Final = "coerce_dtype("
_DTYPE: Final = "dtype("


@dataclass(frozen=True)
class ScoredChunk:
    """What scoring one chunk gives: `scores` has one row per valid record (its key,
    `probability`, `contact`), `quarantine` one per invalid record (its key as given, the
    `reason` and the failing `columns`), both in input order."""

    scores: pd.DataFrame
    quarantine: pd.DataFrame


def contract_frame(chunk: pd.DataFrame, table: Table) -> pd.DataFrame:
    """The chunk's input columns in the schema's order, without its other columns; a nullable
    input column the chunk lacks is all missing (as in a request that leaves it out). A
    required one must be there (the engines check the input's columns once, up front)."""
    frame = chunk.reset_index(drop=True)
    absent = {
        col.name: np.full(len(frame), np.nan if col.dtype == "float64" else None, dtype=object)
        for col in table.input_columns
        if col.nullable and col.name not in frame.columns
    }
    names = [c.name for c in table.input_columns if c.name in frame.columns or c.name in absent]
    return frame.assign(**absent).loc[:, names] if absent else frame.loc[:, names]


def _shown(value: Any) -> str:
    return "a missing value" if value is None else repr(value)


def _reasons(failures: pd.DataFrame) -> dict[int, tuple[str, list[str]]]:
    """Per failing row (its position): the reason in words and the failing columns. A missing
    value is reported as that alone; a wrong type once (not again as a wrong dtype)."""
    where = list(zip(failures["index"], failures["column"], strict=True))
    checks = failures["check"].tolist()
    missing = {w for w, c in zip(where, checks, strict=True) if c == _NOT_NULLABLE}
    coerced = {w for w, c in zip(where, checks, strict=True) if c.startswith(_COERCE)}
    parts: dict[int, list[str]] = {}
    columns: dict[int, list[str]] = {}
    for (index, column), check, value in zip(where, checks, failures["value"], strict=True):
        if ((index, column) in missing and check != _NOT_NULLABLE) or (
            check.startswith(_DTYPE) and (index, column) in coerced
        ):
            continue
        text = f"{column}: {check} failed for {_shown(value)}"
        row = int(index)
        if text not in parts.setdefault(row, []):
            parts[row].append(text)
        if column not in columns.setdefault(row, []):
            columns[row].append(column)
    return {row: ("; ".join(texts), columns[row]) for row, texts in parts.items()}


def _given_key(value: Any) -> str | None:
    """A key as the input gave it (an invalid id may not even have the id's type)."""
    return None if pd.isna(value) else str(value)


def score_chunk(
    chunk: pd.DataFrame,
    model: LoadedModel,
    rows: np.ndarray | None = None,
    source: str = "input",
) -> ScoredChunk:
    """Check each record of `chunk` against the scoring contract, score the valid ones with
    `model` at its threshold, and set the invalid ones apart with the reason.

    The key of a record is its id (the id column's own name), or, for a table without an id
    column, its row number in the whole input: `rows` gives it for each row of the chunk.
    Columns outside the contract are ignored.
    """
    table = model.table
    if table.id is None and (rows is None or len(rows) != len(chunk)):
        raise ValueError("a table without an id column needs the row number of every record")
    records = contract_frame(chunk, table)
    valid, failures = validate_records(records, source, table=table)
    positions = valid.index.to_numpy()
    probability = model.probability(valid) if len(valid) else np.empty(0)
    key = valid[table.id.name].to_numpy() if table.id else np.asarray(rows)[positions]
    scores = pd.DataFrame(
        {table.key: key, PROBABILITY: probability, CONTACT: model.decide(probability)}
    )
    reasons = _reasons(failures)
    bad = sorted(reasons)
    if table.id is not None:
        given: Any = [_given_key(records.at[i, table.id.name]) for i in bad]
    else:
        given = np.asarray(rows, dtype=np.int64)[bad]
    quarantine = pd.DataFrame(
        {
            table.key: given,
            REASON: [reasons[i][0] for i in bad],
            COLUMNS: [reasons[i][1] for i in bad],
        }
    )
    return ScoredChunk(scores=scores, quarantine=quarantine)
