"""What production leaves behind: one JSON line per scored record, per feedback flag, per
outcome. The service writes predictions and feedback (`serving`), the simulator writes the same
lines (`monitoring`), and monitoring reads them back; this module is the one definition of the
format, so writer and reader cannot drift apart.

Files (in a log directory: params.yaml `service.log_dir`, relative to BENTOML_HOME, or the
environment variable MLOPS_LOG_DIR; `core.params.Service.log_path()` resolves it):

- `predictions.jsonl` (+ rotated `predictions.jsonl.1`, `.2`, ...): `PredictionEvent`s. A shadow
  challenger's answer for the same record is a second line with `role: "challenger"` and the
  same `request_id` and `key`.
- `feedback.jsonl` (+ rotated): `FeedbackEvent`s, a business user flagging a scored record.

Outcomes (did the record turn out positive?) arrive later as files, not through the service:
CSV or Parquet with the key column (the schema's id column), `OUTCOME_DATE` and the label
column with its own values (README, "Monitoring").

The service rotates a log while monitoring may be reading it; the readers take a consistent
set of files (they read again when a rotation happened meanwhile), tolerate a file that
vanishes, and drop a line met twice in two files. A line that is not JSON is an `InputError`
naming the file and the line.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlops_template.core.errors import InputError

PREDICTIONS_FILE: Final = "predictions.jsonl"
FEEDBACK_FILE: Final = "feedback.jsonl"
OUTCOME_DATE: Final = "outcome_date"  # the date column of an outcome file
Role = Literal["champion", "challenger"]
_ROTATED = re.compile(r"\.jsonl(\.\d+)?$")


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictionEvent(_Event):
    """One record scored by one model."""

    request_id: str = Field(description="The request's id (shared by a batch's records).")
    ts: datetime = Field(description="When the service scored it (UTC).")
    endpoint: str = Field(description="predict or predict_one.")
    model_version: str
    role: Role = "champion"
    key: str | int = Field(description="The record's key: its id (or row in the request).")
    features: dict[str, Any] = Field(description="The record's input fields as received.")
    probability: float
    contact: bool
    reasons: list[dict[str, Any]] | None = Field(
        default=None, description="The top feature contributions, when the service has them."
    )


class FeedbackEvent(_Event):
    """A person flagging a scored record as wrong or not meeting expectations."""

    ts: datetime
    key: str | int
    reason: str
    comment: str = ""
    model_version: str
    request_id: str | None = Field(
        default=None, description="The scored request's id, when the person gave it."
    )


# The names the service's answers use beside the record's key: /predict's (`Prediction`) and
# /explain's (`RecordExplanation`); /feedback's body and receipt use FeedbackEvent's.
ANSWER_FIELDS: Final = (
    "probability", "contact", "model_version", "log_odds", "base_value", "contributions",
)  # fmt: skip
# Names no schema column may take (`core.table.Table` refuses them): a prediction log line
# holds the record's fields beside its own (flattened into one frame by `read_predictions`),
# and an answer or a feedback body holds the id beside its own fields. The one exception: an
# id column may be called KEY_FIELD, since its value is the key.
KEY_FIELD: Final = "key"
_ANSWER = "a field of the answers of /predict and /explain"
_FEEDBACK = "a field of /feedback's body and of its log lines (FeedbackEvent)"
_PREDICTION = "a field of every prediction log line (PredictionEvent)"
RESERVED_NAMES: Final[dict[str, str]] = {
    **dict.fromkeys(ANSWER_FIELDS, _ANSWER),
    **dict.fromkeys(FeedbackEvent.model_fields, _FEEDBACK),
    **dict.fromkeys(PredictionEvent.model_fields, _PREDICTION),
    OUTCOME_DATE: "the date column of the outcome files",
}
# Which lines are the same line: a record's identity in one model's answer to one request.
PREDICTION_IDENTITY: Final = ("request_id", "role", "key")
_READ_ATTEMPTS: Final = 3  # reads of a directory whose logs rotate meanwhile, before the last


def log_files(directory: Path, name: str) -> list[Path]:
    """`name` and its rotated copies in `directory`, oldest first."""

    def age(path: Path) -> int:
        suffix = path.name.removeprefix(name)
        return int(suffix[1:]) if suffix else 0

    found = [p for p in directory.glob(f"{name}*") if _ROTATED.search(p.name)]
    return sorted(found, key=age, reverse=True)


def _bad_line(path: Path, complete: bytes, exc: Exception) -> InputError:
    """The error for a log pandas could not read: the first line that is not a JSON object."""
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError as bad:
            return InputError(f"{path}, line {number}: not a JSON log line ({bad})")
        if not ok:
            return InputError(f"{path}, line {number}: not a JSON object")
    return InputError(f"{path}: not a JSON lines log ({exc})")


def _read_lines(path: Path) -> pd.DataFrame:
    """The complete lines of a log file (none when it has vanished: rotated away). The service
    may be writing to it: a last line without its newline is not finished yet and is left for
    the next read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return pd.DataFrame()
    complete = data[: data.rfind(b"\n") + 1]
    if not complete.strip():
        return pd.DataFrame()
    try:
        # dtype=False: values as the JSON has them (pandas would turn an id "00123" into 123).
        return pd.read_json(io.BytesIO(complete), lines=True, dtype=False)
    except (ValueError, TypeError) as exc:  # TypeError: a line that is not an object
        raise _bad_line(path, complete, exc) from None


def _files(directory: Path, name: str) -> list[tuple[Path, int | None]]:
    """The log files and their inodes: a rotation renames them, so the inodes change."""
    found: list[tuple[Path, int | None]] = []
    for path in log_files(directory, name):
        try:
            found.append((path, path.stat().st_ino))
        except FileNotFoundError:
            found.append((path, None))
    return found


def _read_log(
    directory: Path, name: str, identity: Callable[[pd.DataFrame], list[str]]
) -> pd.DataFrame:
    """Every complete line of a log and its rotated files, oldest first.

    When the service rotated the files while they were read (the list of files and their
    inodes changed), they are read again, up to _READ_ATTEMPTS times. A line of a later file
    whose identity an earlier file already holds is the same line read twice (it was renamed
    between two reads) and is dropped; within one file every line is kept (the n-th line of
    an identity in a file is dropped only when an earlier file holds an n-th one too)."""
    for _ in range(_READ_ATTEMPTS):
        before = _files(directory, name)
        frames = [_read_lines(path) for path, _inode in before]
        if _files(directory, name) == before:
            break
    frames = [f.assign(_file=i) for i, f in enumerate(frames) if not f.empty]
    if not frames:
        return pd.DataFrame()
    lines = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:
        keys = identity(lines)
        lines["_nth"] = lines.groupby([*keys, "_file"], dropna=False, sort=False).cumcount()
        first = lines.groupby([*keys, "_nth"], dropna=False, sort=False)["_file"].transform("min")
        lines = lines[lines["_file"] == first].reset_index(drop=True)
    return lines.drop(columns=["_file", "_nth"], errors="ignore")


def read_predictions(directory: Path) -> pd.DataFrame:
    """Every logged prediction, oldest first, features as columns (`feature.<name>` keys
    flattened to the column names themselves)."""
    events = _read_log(directory, PREDICTIONS_FILE, lambda _: list(PREDICTION_IDENTITY))
    if events.empty:
        return pd.DataFrame(columns=list(PredictionEvent.model_fields))
    features = pd.json_normalize(events.pop("features").tolist())
    # An id column called KEY_FIELD holds the key itself: one column of it is enough.
    features = features.drop(columns=[KEY_FIELD], errors="ignore")
    return pd.concat([events, features], axis=1)


def read_feedback(directory: Path) -> pd.DataFrame:
    """Every feedback flag, oldest first (a flag's identity: all its fields)."""
    events = _read_log(directory, FEEDBACK_FILE, lambda f: [c for c in f.columns if c != "_file"])
    if events.empty:
        return pd.DataFrame(columns=list(FeedbackEvent.model_fields))
    return events
