"""The team's data contract on the team's own rows: every corruption the schema implies is
rejected naming the column, valid data passes unchanged, and the validate stage writes
nothing but its report on failure.

The rows come from `data.source` (the built-in sample or the team's file) and the corpus from
`core/schema.py`, so these tests follow a team's table without an edit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Kind
from mlops_template.core.validation import WHOLE_TABLE, DataValidationError, validate_table
from mlops_template.pipeline import validate
from tests.support import ROOT, Corrupt, corruptions, team_table

pytestmark = pytest.mark.data

CORPUS = corruptions()


@pytest.fixture(scope="module")
def valid(params: Params) -> pd.DataFrame:
    return team_table(params, n_rows=400)


def test_corpus_covers_every_column_and_the_label() -> None:
    named = {case.column for case in CORPUS}
    assert {c.name for c in TABLE.columns} <= named, "every column has a corruption"
    assert TABLE.label.name in named
    assert len({case.id for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_schema_rejects_corruption_naming_the_column(valid: pd.DataFrame, case: Corrupt) -> None:
    frame = case.apply(valid.copy())
    with pytest.raises(DataValidationError) as info:
        validate_table(frame, source="raw.parquet")
    err = info.value
    message = str(err)
    named = {f.column for f in err.failures}
    assert case.column in named, f"expected a failure on {case.column!r}, got {named}:\n{message}"
    if case.column == WHOLE_TABLE:
        assert "the table" in message
    else:
        assert f"column '{case.column}'" in message
    assert case.text in message, f"{case.text!r} not in:\n{message}"
    assert message.startswith("raw.parquet:")
    assert not err.cases.empty


def test_row_level_failures_point_at_the_row(valid: pd.DataFrame) -> None:
    column = next(c for c in TABLE.features if c.max is not None)
    frame = valid.copy()
    frame[column.name] = frame[column.name].astype(object)
    frame.loc[17, column.name] = column.max * 2 + 1  # type: ignore[operator]
    with pytest.raises(DataValidationError) as info:
        validate_table(frame)
    [failure] = [f for f in info.value.failures if f.column == column.name]
    assert (failure.rows, failure.example_rows) == (1, [17])


def test_all_failures_are_reported_at_once(valid: pd.DataFrame) -> None:
    first, second, *_ = [c for c in CORPUS if c.column not in (WHOLE_TABLE,)]
    frame = second.apply(first.apply(valid.copy()))
    with pytest.raises(DataValidationError) as info:
        validate_table(frame)
    assert {first.column, second.column} <= {f.column for f in info.value.failures}


def test_schema_accepts_the_teams_data_unchanged(valid: pd.DataFrame) -> None:
    before = valid.copy()
    pd.testing.assert_frame_equal(validate_table(valid), valid)
    pd.testing.assert_frame_equal(valid, before)  # the input is not modified


def test_schema_accepts_a_csv_round_trip(valid: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    valid.to_csv(path, index=False)
    pd.testing.assert_frame_equal(validate_table(files.read_table(path)), valid)


@pytest.mark.parametrize("column", [c.name for c in TABLE.columns if c.kind is Kind.BOOLEAN])
def test_text_booleans_are_parsed_not_coerced(valid: pd.DataFrame, column: str) -> None:
    # Casting text to bool makes every non-empty string True, "False" included.
    words = ["True", "false", "FALSE", "1", "0", True, False]
    frame = valid.head(len(words)).copy()
    frame[column] = pd.Series(words, dtype=object)
    validated = validate_table(frame)
    assert validated[column].dtype == bool
    assert validated[column].tolist() == [True, False, False, True, False, True, False]


def test_whole_floats_in_integer_columns_are_accepted(valid: pd.DataFrame) -> None:
    ints = [c.name for c in TABLE.columns if c.dtype == "int64" and not c.nullable]
    frame = valid.copy()
    for name in ints:
        frame[name] = frame[name].astype(float)
    validated = validate_table(frame)
    for name in ints:
        assert validated[name].dtype == np.int64
        assert validated[name].tolist() == valid[name].tolist()


def test_records_to_score_need_no_label_and_no_table_checks(valid: pd.DataFrame) -> None:
    validate_table(valid.drop(columns=[TABLE.label.name]), with_label=False, table_checks=False)


def test_empty_and_header_only_files_are_rejected(valid: pd.DataFrame, tmp_path: Path) -> None:
    empty = tmp_path / "table.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"table\.csv: the file is empty"):
        files.read_table(empty)
    header = tmp_path / "header.csv"
    valid.iloc[:0].to_csv(header, index=False)
    with pytest.raises(DataValidationError, match="at_least_1_rows"):
        validate_table(files.read_table(header))


# --- the validate stage end to end (in process) ----------------------------------------------


def _stage_args(tmp_path: Path, raw: Path) -> list[str]:
    return [
        "--params", str(ROOT / "params.yaml"), "--raw", str(raw),
        "--out", str(tmp_path / "validated.parquet"), "--summary", str(tmp_path / "summary.json"),
        "--errors", str(tmp_path / "errors.json"),
    ]  # fmt: skip


def test_validate_stage_fails_with_report_and_writes_nothing_else(
    valid: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = next(c for c in CORPUS if c.id.endswith("-unknown-category") or c.id.endswith("-null"))
    raw = tmp_path / "raw.parquet"
    files.write_parquet(raw, case.apply(valid.copy()))
    with caplog.at_level(logging.ERROR):
        assert validate.main(_stage_args(tmp_path, raw)) == 1
    assert "validate failed" in caplog.text
    assert f"column '{case.column}'" in caplog.text
    report = files.read_json(tmp_path / "errors.json")
    assert report["source"].startswith(str(raw))
    assert [f["column"] for f in report["failed_checks"]] == [case.column]
    assert report["failure_cases"][0]["index"] == 0
    assert not (tmp_path / "validated.parquet").exists()
    assert not (tmp_path / "summary.json").exists()


def test_validate_stage_success_writes_summary_and_clears_old_report(
    valid: pd.DataFrame, tmp_path: Path
) -> None:
    raw = tmp_path / "raw.parquet"
    files.write_parquet(raw, valid)
    (tmp_path / "errors.json").write_text("{}", encoding="utf-8")  # from an earlier failure
    assert validate.main(_stage_args(tmp_path, raw)) == 0
    assert not (tmp_path / "errors.json").exists()
    pd.testing.assert_frame_equal(files.read_table(tmp_path / "validated.parquet"), valid)
    summary = files.read_json(tmp_path / "summary.json")
    assert summary["rows"] == len(valid)
    assert summary["label_rate"] == pytest.approx(TABLE.target(valid).mean(), abs=1e-6)
    assert set(summary["null_rate"]) == {c.name for c in TABLE.columns if c.nullable}
    assert summary["schema"] == TABLE.describe()


def test_validate_stage_on_an_empty_file_exits_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_bytes(b"")
    with caplog.at_level(logging.ERROR):
        assert validate.main(_stage_args(tmp_path, raw)) == 1
    assert "raw.csv: the file is empty" in caplog.text
