"""The production window: what the service logged, compacted to Parquet, and the outcomes
that have arrived since.

The service writes JSON lines (`core.events`: `predictions.jsonl`, rotated to `.1`, `.2`, ...,
and `feedback.jsonl`). `compact` reads every rotated file, oldest first, through
`core.events.read_predictions` / `read_feedback` and writes one Parquet file each: the window
the analysis reads, and what a team archives (README, "Monitoring").

Outcomes are a file drop: CSV or Parquet files in one directory, each with the key column
(the schema's id column), `core.events.OUTCOME_DATE` and the label column with the label's own
values. A key that appears twice keeps its latest outcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from mlops_template.core import events
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.table import Kind, Table

log = logging.getLogger(__name__)

PREDICTIONS_PARQUET: Final = "predictions.parquet"
FEEDBACK_PARQUET: Final = "feedback.parquet"
OUTCOME_SUFFIXES: Final = (".csv", ".parquet", ".pq")
RECORD: Final = "_record"  # the identity of a record in a window (its key, as text)
Y: Final = "_y"  # an outcome as 1 (positive) / 0 (negative)


@dataclass(frozen=True)
class Window:
    """Every logged line (champion and challenger, oldest first) and every feedback flag."""

    predictions: pd.DataFrame
    feedback: pd.DataFrame


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns that mix Python types (a number logged as text) become text, so the window can
    be written; the quality check then reports the values that are not of the column's type."""
    mixed = {
        str(name): frame[name].map(lambda v: v if v is None or pd.isna(v) else str(v))
        for name in frame.columns
        if frame[name].dtype == object
        and pd.api.types.infer_dtype(frame[name], skipna=True) in ("mixed", "mixed-integer")
    }
    return frame.assign(**mixed) if mixed else frame


def _with_times(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    ts = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return frame.assign(ts=ts).sort_values("ts", kind="stable").reset_index(drop=True)


def log_dirs(logs: Path) -> list[Path]:
    """`logs` and its sub-directories (one per service instance) that hold prediction logs."""
    if not logs.is_dir():
        return []
    candidates = [logs, *sorted(d for d in logs.iterdir() if d.is_dir())]
    return [d for d in candidates if events.log_files(d, events.PREDICTIONS_FILE)]


def has_logs(logs: Path) -> bool:
    return bool(log_dirs(logs))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    kept = [f for f in frames if not f.empty]
    return pd.concat(kept, ignore_index=True) if len(kept) > 1 else (kept or frames)[0]


def compact(logs: Path, out: Path) -> Window:
    """Read the rotated JSON-lines logs in `logs` (and in its sub-directories, one per service
    instance) and write `out`/predictions.parquet and feedback.parquet (each replaced
    atomically); the window they hold."""
    dirs = log_dirs(logs) or [logs]
    predictions = _with_times(_concat([events.read_predictions(d) for d in dirs]))
    feedback = _with_times(_concat([events.read_feedback(d) for d in dirs]))
    if predictions.empty:
        raise InputError(f"{logs}: the prediction logs hold no record")
    files.write_parquet(out / PREDICTIONS_PARQUET, _parquet_safe(predictions))
    files.write_parquet(out / FEEDBACK_PARQUET, _parquet_safe(feedback))
    log.info(
        "compacted %s prediction lines and %s feedback flags from %s into %s",
        f"{len(predictions):,}",
        f"{len(feedback):,}",
        logs,
        out,
    )
    return Window(predictions, feedback)


def read_window(out: Path) -> Window:
    """A window compacted before (or downloaded: `make monitor-fetch`)."""
    path = out / PREDICTIONS_PARQUET
    if not path.is_file():
        raise InputError(
            f"{path}: no compacted window, and no prediction logs to compact: run the service, "
            "`make simulate`, or fetch a window (`make monitor-fetch`)"
        )
    feedback_path = out / FEEDBACK_PARQUET
    feedback = (
        files.read_table(feedback_path)
        if feedback_path.is_file()
        else pd.DataFrame(columns=list(events.FeedbackEvent.model_fields))
    )
    return Window(_with_times(files.read_table(path)), _with_times(feedback))


def last_days(window: Window, days: int | None) -> Window:
    """Only the lines of the last `days` days before the newest prediction (None: all)."""
    if days is None or window.predictions.empty:
        return window
    start = window.predictions["ts"].max() - timedelta(days=days)
    feedback = window.feedback
    if not feedback.empty:
        feedback = feedback[feedback["ts"] >= start].reset_index(drop=True)
    predictions = window.predictions[window.predictions["ts"] >= start].reset_index(drop=True)
    return Window(predictions, feedback)


# --- records ------------------------------------------------------------------------------


def record_ids(frame: pd.DataFrame, table: Table) -> pd.Series:
    """Which record each line is about: its key (the id) as text; without an id column the
    key is a row number within its request, so the request id is part of it."""
    key = frame["key"].astype(str)
    return key if table.id is not None else frame["request_id"].astype(str) + "/" + key


def versions(predictions: pd.DataFrame, role: events.Role) -> dict[str, int]:
    """Lines per model version for one role, most lines first."""
    lines = predictions[predictions["role"] == role]["model_version"].astype(str)
    return {str(k): int(v) for k, v in lines.value_counts().items()}


def records(predictions: pd.DataFrame, version: str, table: Table, role: str) -> pd.DataFrame:
    """One row per record scored by `version` in `role` (the latest line when a record was
    scored more than once), oldest first, with `RECORD`."""
    lines = predictions[
        (predictions["role"] == role) & (predictions["model_version"].astype(str) == version)
    ]
    lines = lines.assign(**{RECORD: record_ids(lines, table)})
    return lines.drop_duplicates(RECORD, keep="last").reset_index(drop=True)


def inputs(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """The records' input columns as the schema declares them (the id from the key when the
    logged fields do not carry it; a column never logged is all missing)."""
    columns: dict[str, pd.Series] = {}
    for col in table.input_columns:
        if col.name in frame.columns:
            columns[col.name] = frame[col.name]
        elif col.kind is Kind.ID:
            columns[col.name] = frame["key"]
        else:
            columns[col.name] = pd.Series(np.nan, index=frame.index)
    return pd.DataFrame(columns, index=frame.index).reset_index(drop=True)


# --- outcomes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """The outcomes that have arrived: one row per record, `RECORD`, `OUTCOME_DATE`, `Y`."""

    frame: pd.DataFrame
    files: tuple[str, ...]
    rows: int  # rows read, before duplicates and bad labels were set aside
    invalid: int  # rows whose label is not one of the label's two values
    unmatched: int = 0  # filled in by `label`: outcomes for records not in the window


def _as_label(values: pd.Series, table: Table) -> pd.Series:
    """The outcome column in the label's own type (text from a CSV for a boolean label)."""
    label = table.label
    if label.dtype == "bool":
        words = {"true": True, "1": True, "false": False, "0": False}
        return values.map(lambda v: words.get(str(v).strip().lower(), v) if pd.notna(v) else v)
    if label.dtype == "int64":
        return pd.to_numeric(values, errors="coerce")
    return values.astype(object).where(values.isna(), values.astype(str))


def read_outcomes(directory: Path, table: Table) -> Outcomes:
    """Every outcome file in `directory` (none yet: an empty frame)."""
    empty = pd.DataFrame(columns=[RECORD, events.OUTCOME_DATE, Y])
    if table.id is None or not directory.is_dir():
        return Outcomes(empty, (), 0, 0)
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in OUTCOME_SUFFIXES)
    needed = [table.id.name, events.OUTCOME_DATE, table.label.name]
    frames = []
    for path in paths:
        frame = files.read_table(path)
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise InputError(
                f"{path}: an outcome file needs the columns {needed}; missing {missing} "
                "(README, 'Monitoring': the outcome file drop)"
            )
        frames.append(frame.loc[:, needed])
    if not frames:
        return Outcomes(empty, (), 0, 0)
    raw = pd.concat(frames, ignore_index=True)
    label = _as_label(raw[table.label.name], table)
    valid = label.isin(list(table.label.values))
    dates = pd.to_datetime(raw[events.OUTCOME_DATE], utc=True, errors="coerce", format="mixed")
    frame = pd.DataFrame(
        {
            RECORD: raw[table.id.name].astype(str),
            events.OUTCOME_DATE: dates,
            Y: (label == table.label.positive).astype(np.int64),
        }
    )[valid.to_numpy()]
    frame = frame.sort_values(events.OUTCOME_DATE, kind="stable", na_position="first")
    frame = frame.drop_duplicates(RECORD, keep="last").reset_index(drop=True)
    return Outcomes(frame, tuple(str(p) for p in paths), len(raw), int((~valid).sum()))


def label(records_: pd.DataFrame, outcomes: Outcomes) -> tuple[pd.DataFrame, Outcomes]:
    """The records whose outcome has arrived, with `Y` (and the outcomes, counting those for
    records this window does not hold)."""
    joined = records_.merge(outcomes.frame, on=RECORD, how="inner", validate="one_to_one")
    unmatched = len(outcomes.frame) - len(joined)
    return joined, Outcomes(
        outcomes.frame, outcomes.files, outcomes.rows, outcomes.invalid, unmatched
    )
