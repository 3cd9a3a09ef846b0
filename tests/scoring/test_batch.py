"""Batch scoring end to end through its command line, on files made from the team's rows with
the schema's corruptions: a directory of Parquet files and a CSV give the same scores, bad
records are quarantined with their reason, and a run that fails leaves nothing behind."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import ROW_KEY
from mlops_template.scoring.batch import interactive, main, score_table
from mlops_template.scoring.output import QUARANTINE, SCORES, SUMMARY
from mlops_template.scoring.score import COLUMNS, PROBABILITY, REASON
from mlops_template.scoring.source import open_source
from tests.scoring.conftest import (
    TOLERATED,
    Trained,
    one_record_corruptions,
    params_file,
    without_id,
)
from tests.support import Corrupt

pytestmark = pytest.mark.data

FILE_ROWS = (250, 1, 349)  # a directory of files of unequal sizes (chunks are 97 rows)


def corrupt_rows(
    base: pd.DataFrame, cases: list[Corrupt]
) -> tuple[pd.DataFrame, dict[int, Corrupt]]:
    """`base` with case k applied to its own row (every 7th from row 3, or closer when the
    table is small; cases beyond its rows are left out), nothing else changed."""
    step = max(1, min(7, (len(base) - 3) // max(1, len(cases))))
    frame = base.copy()
    where: dict[int, Corrupt] = {}
    for k, case in enumerate(cases[: (len(base) - 3) // step]):
        row = 3 + step * k
        one = case.apply(base.iloc[[row]].reset_index(drop=True))
        frame[case.column] = frame[case.column].astype(object)
        frame.loc[row, case.column] = one.loc[0, case.column]
        where[row] = case
    return frame, where


def typed_cases(base: pd.DataFrame) -> list[Corrupt]:
    """The one-record corruptions a Parquet file of the table's own types can hold."""
    schema = pa.Schema.from_pandas(base, preserve_index=False)
    fits = []
    for case in one_record_corruptions():
        one = case.apply(base.head(1))
        try:
            pa.Table.from_pandas(one, schema=schema, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError):
            continue
        fits.append(case)
    return fits


def write_parts(frame: pd.DataFrame, directory: Path) -> Path:
    directory.mkdir()
    schema = pa.Schema.from_pandas(frame.infer_objects(), preserve_index=False)
    start = 0
    for i, n in enumerate(FILE_ROWS):
        part = frame.iloc[start : start + n]
        pq.write_table(
            pa.Table.from_pandas(part, schema=schema, preserve_index=False),
            directory / f"part-{i}.parquet",
        )
        start += n
    (directory / "_SUCCESS").write_text("")  # written by Spark and friends: not data
    return directory


def run(args: list[str], params: Path, trained: Trained) -> int:
    return main(
        [*args, "--params", str(params), "--model", str(trained.path), "--card", str(trained.card)]
    )


def read_output(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    summary = json.loads((directory / SUMMARY).read_text(encoding="utf-8"))
    return pd.read_parquet(directory / SCORES), pd.read_parquet(directory / QUARANTINE), summary


def expected_key(frame: pd.DataFrame, row: int) -> Any:
    if TABLE.id is None:
        return row
    given = frame.loc[row, TABLE.id.name]
    return None if pd.isna(given) else str(given)


def check_quarantine(
    quarantine: pd.DataFrame, frame: pd.DataFrame, where: dict[int, Corrupt]
) -> None:
    assert len(quarantine) == len(where), quarantine[REASON].tolist()
    for (_, record), (row, case) in zip(quarantine.iterrows(), sorted(where.items()), strict=True):
        key, expected = record[TABLE.key], expected_key(frame, row)
        assert key == expected or (pd.isna(key) and expected is None), case.id
        assert case.text in record[REASON], case.id
        assert case.column in list(record[COLUMNS]), case.id


@pytest.fixture(scope="module")
def tolerant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return params_file(
        tmp_path_factory.mktemp("params"),
        {"score.chunk_rows": 97, "score.max_invalid_share": TOLERATED},
    )


def test_a_directory_of_parquet_files_is_scored_and_bad_rows_quarantined(
    base: pd.DataFrame,
    trained: Trained,
    tolerant: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame, where = corrupt_rows(base, typed_cases(base))
    source = write_parts(frame, tmp_path / "exports")
    out = tmp_path / "scored"
    assert run(["--input", str(source), "--output", str(out)], tolerant, trained) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([SCORES, QUARANTINE, SUMMARY])
    scores, quarantine, summary = read_output(out)

    valid = frame.drop(index=list(where)).astype(base.dtypes.to_dict())
    assert scores[TABLE.key].tolist() == (TABLE.keys(valid) if TABLE.id else list(valid.index))
    expected = trained.model.probability(valid)
    assert np.array_equal(scores[PROBABILITY].to_numpy(), expected), "scores differ in process"
    check_quarantine(quarantine, frame, where)
    meta = pq.read_metadata(out / SCORES).metadata
    assert meta[b"model_sha256"].decode() == trained.model.sha256
    assert meta[b"model_version"].decode() == trained.model.version
    assert summary["records"] == {
        "read": len(frame),
        "scored": len(valid),
        "quarantined": len(where),
        "to_contact": int((expected >= trained.model.threshold).sum()),
        "duplicate_keys": 0,
    }
    printed = capsys.readouterr().out
    assert f"{len(frame):,}" in printed
    assert "Expected profit" in printed


def test_a_csv_with_extra_columns_scores_the_same(
    base: pd.DataFrame,
    trained: Trained,
    tolerant: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    frame, where = corrupt_rows(base, one_record_corruptions())
    with_label = frame.assign(**{TABLE.label.name: "unknown", "__exported_at__": "2026-12-01"})
    csv = tmp_path / "records.csv"
    with_label.to_csv(csv, index=False)
    out = tmp_path / "scored"
    assert run(["--input", str(csv), "--output", str(out)], tolerant, trained) == 0
    scores, quarantine, summary = read_output(out)
    check_quarantine(quarantine, frame, where)
    valid = base.drop(index=list(where))
    assert np.array_equal(scores[PROBABILITY].to_numpy(), trained.model.probability(valid))
    assert summary["records"]["read"] == len(frame)
    ignored = [
        r.getMessage() for r in caplog.records if "outside the scoring contract" in r.getMessage()
    ]
    assert len(ignored) == 1, "the ignored columns are said once"
    assert TABLE.label.name in ignored[0]
    assert "__exported_at__" in ignored[0]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_csv_with_a_byte_order_mark_scores_like_one_without(
    suffix: str, base: pd.DataFrame, trained: Trained, score_params: Params, tmp_path: Path
) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark: the first column keeps its name."""
    plain, marked = tmp_path / f"plain{suffix}", tmp_path / f"excel{suffix}"
    base.to_csv(plain, index=False)
    base.to_csv(marked, index=False, encoding="utf-8-sig")
    assert marked.stat().st_size > plain.stat().st_size, "no byte-order mark was written"
    assert open_source(marked).columns == tuple(base.columns)
    score_table(plain, tmp_path / "plain-out", trained.files, score_params)
    score_table(marked, tmp_path / "excel-out", trained.files, score_params)
    p_scores, _, p_summary = read_output(tmp_path / "plain-out")
    m_scores, m_quarantine, m_summary = read_output(tmp_path / "excel-out")
    assert m_quarantine.empty
    pd.testing.assert_frame_equal(m_scores, p_scores)
    assert m_summary.pop("input") != p_summary.pop("input")
    assert m_summary == p_summary


def test_repeated_ids_are_scored_each_time_counted_and_warned_about(
    base: pd.DataFrame,
    trained: Trained,
    score_params: Params,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if TABLE.id is None:
        pytest.skip("a table without an id column is keyed by row number: keys never repeat")
    again = base.iloc[[5, 5, 300, 7]]  # row 5 three times in all; the copies in other chunks
    source = tmp_path / "records.parquet"
    pd.concat([base, again], ignore_index=True).to_parquet(source)
    summary = score_table(source, tmp_path / "out", trained.files, score_params)
    scores, _, written = read_output(tmp_path / "out")
    assert len(scores) == len(base) + len(again), "a repeated id is still scored"
    assert summary["records"]["duplicate_keys"] == len(again)
    assert written["records"]["duplicate_keys"] == len(again)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "4 scored record(s) repeat the key" in m and str(base.loc[5, TABLE.id.name]) in m
        for m in warned
    ), warned


def test_too_many_bad_rows_fail_the_run_and_leave_nothing(
    base: pd.DataFrame, trained: Trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame, where = corrupt_rows(base, one_record_corruptions())
    csv = tmp_path / "records.csv"
    frame.to_csv(csv, index=False)
    strict = params_file(tmp_path, {"score.chunk_rows": 97, "score.max_invalid_share": 0.01})
    out = tmp_path / "scored"
    assert run(["--input", str(csv), "--output", str(out)], strict, trained) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "records.csv"]
    assert "score.max_invalid_share" in caplog.text
    assert f"{len(where):,} of" in caplog.text


def test_a_failed_run_leaves_the_previous_output_as_it_was(
    base: pd.DataFrame, trained: Trained, tmp_path: Path
) -> None:
    strict = params_file(tmp_path, {"score.chunk_rows": 97, "score.max_invalid_share": 0.01})
    source = tmp_path / "records.csv"
    base.to_csv(source, index=False)
    out = tmp_path / "scored"
    assert run(["--input", str(source), "--output", str(out)], strict, trained) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # The second run fails at its end, when the bad share of the whole CSV is known.
    corrupt_rows(base, one_record_corruptions())[0].to_csv(source, index=False)
    assert run(["--input", str(source), "--output", str(out)], strict, trained) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "records.csv", "scored"]


def test_a_missing_required_column_is_an_error_naming_it(
    base: pd.DataFrame, trained: Trained, score_params: Params, tmp_path: Path
) -> None:
    name = TABLE.features[0].name
    source = tmp_path / "records.parquet"
    base.drop(columns=[name]).to_parquet(source)
    with pytest.raises(InputError, match=f"missing required column.*{name}"):
        score_table(source, tmp_path / "out", trained.files, score_params)
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_not_a_scoring_output_is_never_replaced(
    base: pd.DataFrame, trained: Trained, score_params: Params, tmp_path: Path
) -> None:
    source = tmp_path / "records.parquet"
    base.to_parquet(source)
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="refusing to replace"):
        score_table(source, precious, trained.files, score_params)
    assert [p.name for p in precious.iterdir()] == ["thesis.tex"]


def test_without_an_id_the_key_is_the_row_number_across_files(
    base: pd.DataFrame, trained: Trained, score_params: Params, tmp_path: Path
) -> None:
    table = without_id()
    frame, where = corrupt_rows(base, [c for c in typed_cases(base) if c.column != TABLE.key])
    source = write_parts(
        frame.drop(columns=[TABLE.key]) if TABLE.id else frame, tmp_path / "exports"
    )
    score_table(source, tmp_path / "out", trained.files, score_params, table=table)
    scores, quarantine, _ = read_output(tmp_path / "out")
    assert quarantine[ROW_KEY].tolist() == sorted(where)
    assert scores[ROW_KEY].tolist() == [i for i in range(len(frame)) if i not in where]


@pytest.mark.unit
def test_progress_shows_on_a_terminal_only_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    monkeypatch.delenv("CI", raising=False)
    assert interactive()
    monkeypatch.setenv("CI", "true")
    assert not interactive()
