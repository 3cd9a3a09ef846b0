"""The window: rotated JSON-lines logs (and one directory per service instance) compacted to
Parquet, the outcome file drop, the production windows the ingest stage adds, and the one
monitoring issue (against a fake `gh`)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_template.core import events
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.monitoring import publish, window
from mlops_template.pipeline.ingest import with_windows
from tests.support import team_table

pytestmark = pytest.mark.unit
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _line(i: int, row: dict[str, object], role: events.Role = "champion") -> str:
    key = row[TABLE.key] if TABLE.id else i
    return events.PredictionEvent(
        request_id=f"r{i}", ts=T0 + timedelta(minutes=i), endpoint="predict",
        model_version="abc", role=role, key=key, features=row, probability=i / 100,
        contact=i % 2 == 0,
    ).model_dump_json()  # fmt: skip


def _rows(params: Params, n: int) -> list[dict[str, object]]:
    frame = team_table(params, n_rows=n).loc[:, [c.name for c in TABLE.input_columns]]
    return frame.astype(object).where(frame.notna(), None).to_dict("records")  # type: ignore[return-value]


def test_compaction_reads_every_rotated_file_oldest_first_and_every_instance(
    tmp_path: Path, params: Params
) -> None:
    rows = _rows(params, 9)
    logs = tmp_path / "logs"
    (logs / "pod-b").mkdir(parents=True)
    # the service rotates predictions.jsonl -> .1 -> .2: the highest number is the oldest
    for name, part in (("predictions.jsonl.2", [0, 1]), ("predictions.jsonl.1", [2, 3]),
                       ("predictions.jsonl", [4, 5])):  # fmt: skip
        (logs / name).write_text("".join(_line(i, rows[i]) + "\n" for i in part), "utf-8")
    (logs / "pod-b" / "predictions.jsonl").write_text(
        "".join(_line(i, rows[i]) + "\n" for i in (6, 7, 8)), "utf-8"
    )
    (logs / "predictions.jsonl.backup").write_text("not a log\n", "utf-8")
    flag = events.FeedbackEvent(ts=T0, key="k", reason="other", comment="c", model_version="abc")
    (logs / "feedback.jsonl").write_text(flag.model_dump_json() + "\n", "utf-8")
    out = tmp_path / "window"
    compacted = window.compact(logs, out)
    assert len(compacted.predictions) == 9
    assert compacted.predictions["request_id"].tolist() == [f"r{i}" for i in range(9)]
    assert set(TABLE.feature_names) <= set(compacted.predictions.columns)
    assert str(compacted.predictions["ts"].dt.tz) == "UTC"
    assert len(compacted.feedback) == 1
    again = window.read_window(out)
    same = [c for c in compacted.predictions.columns if c != "reasons"]  # None vs NaN: all empty
    pd.testing.assert_frame_equal(
        again.predictions[same], compacted.predictions[same], check_dtype=False
    )
    assert (out / window.PREDICTIONS_PARQUET).is_file()


def test_no_logs_and_no_compacted_window_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="make simulate"):
        window.read_window(tmp_path / "nothing")
    assert not window.has_logs(tmp_path / "nothing")


def test_the_latest_line_of_a_record_counts_and_the_last_days_filter(
    tmp_path: Path, params: Params
) -> None:
    rows = _rows(params, 3)
    lines = [_line(0, rows[0]), _line(1, rows[1]), _line(50 * 24 * 60, rows[0])]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "predictions.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    found = window.compact(logs, tmp_path / "w")
    recs = window.records(found.predictions, "abc", TABLE, "champion")
    assert len(recs) == (2 if TABLE.id else 3)
    assert len(window.last_days(found, 7).predictions) == 1


def test_outcomes_need_their_columns_and_keep_the_latest_per_record(
    tmp_path: Path, params: Params
) -> None:
    if TABLE.id is None:
        pytest.skip("outcomes are matched by the id column")
    drop = tmp_path / "outcomes"
    drop.mkdir()
    label = TABLE.label
    good = pd.DataFrame({
        TABLE.id.name: ["a", "a", "b", "c"],
        events.OUTCOME_DATE: ["2026-11-01", "2026-11-05", "2026-11-02", "2026-11-02"],
        label.name: [label.negative, label.positive, label.negative, "neither"],
    })  # fmt: skip
    good.to_csv(drop / "first.csv", index=False)
    found = window.read_outcomes(drop, TABLE)
    by_id = dict(zip(found.frame[window.RECORD], found.frame[window.Y], strict=True))
    assert by_id == {"a": 1, "b": 0}, "latest outcome per record; a label value that is neither"
    assert found.invalid == 1
    assert found.rows == 4
    good.drop(columns=[events.OUTCOME_DATE]).to_csv(drop / "second.csv", index=False)
    with pytest.raises(InputError, match=f"second.csv.*missing.*{events.OUTCOME_DATE}"):
        window.read_outcomes(drop, TABLE)


# --- the production windows the ingest stage reads ------------------------------------------


def test_ingest_appends_or_slides_and_keeps_the_latest_version_of_a_record(
    tmp_path: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = team_table(params, n_rows=100)
    cfg = params.monitor.retrain
    directory = Path(cfg.windows)
    directory.mkdir(parents=True)
    assert with_windows(source, cfg) is source, "no window: the source as it is"
    first, second = source.iloc[:10].copy(), source.iloc[10:30].copy()
    first.to_parquet(directory / "20261101T0000-aaaa.parquet")
    second.to_parquet(directory / "20261108T0000-bbbb.parquet")
    appended = with_windows(source, cfg.model_copy(update={"policy": "append"}))
    sliding = with_windows(source, cfg.model_copy(update={"policy": "sliding"}))
    if TABLE.id is not None:
        assert len(appended) == 100, "the windows' records replace their earlier versions"
        assert appended[TABLE.id.name].is_unique
    assert len(sliding) == 30
    (directory / "20261115T0000-cccc.parquet.dvc").write_text("outs: []\n")
    with pytest.raises(InputError, match="make pull-data"):
        with_windows(source, cfg)


# --- the one issue, with a fake gh ----------------------------------------------------------


FAKE_GH = """#!/usr/bin/env python3
import json, os, sys
state = os.environ["FAKE_GH_STATE"]
calls = json.load(open(state)) if os.path.exists(state) else []
calls.append(sys.argv[1:])
json.dump(calls, open(state, "w"))
if sys.argv[1:3] == ["issue", "list"]:
    print(os.environ.get("FAKE_GH_OPEN", ""))
elif sys.argv[1:3] == ["issue", "create"]:
    print("https://github.com/o/r/issues/7")
"""


def test_the_issue_is_opened_once_and_then_edited(
    tmp_path: Path, params: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH, "utf-8")
    (bin_dir / "gh").chmod(0o755)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "summary.md").write_text("## 🔴 Retrain recommended\n", "utf-8")
    (reports / "summary.json").write_text(json.dumps({"status": "retrain"}), "utf-8")
    state = tmp_path / "calls.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    monkeypatch.setenv("GH_TOKEN", "test-token")
    assert publish.publish_issue(reports, "churn model monitoring") == "7"
    monkeypatch.setenv("FAKE_GH_OPEN", "7")
    assert publish.publish_issue(reports, "churn model monitoring") == "7"
    calls = json.loads(state.read_text())
    creates = [c for c in calls if c[:2] == ["issue", "create"]]
    edits = [c for c in calls if c[:2] == ["issue", "edit"]]
    assert len(creates) == 1, calls
    assert len(edits) == 1, calls
    assert edits[0][2] == "7"
    assert "model-monitoring" in creates[0]
    assert (
        creates[0][creates[0].index("--title") + 1] == "churn model monitoring: retrain recommended"
    )
    assert all(c[:2] != ["issue", "comment"] for c in calls), "no comment per run"
    monkeypatch.delenv("GH_TOKEN")
    with pytest.raises(InputError, match="GH_TOKEN"):
        publish.publish_issue(reports, "x")


def test_fetch_names_the_variable_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_LOGS_URL", raising=False)
    with pytest.raises(InputError, match="MONITOR_LOGS_URL"):
        publish.fetch(tmp_path / "logs", tmp_path / "outcomes")
    source = tmp_path / "bucket" / "monitoring"
    source.mkdir(parents=True)
    (source / "predictions.jsonl").write_text("{}\n", "utf-8")
    monkeypatch.setenv("MONITOR_LOGS_URL", str(source))
    publish.fetch(tmp_path / "logs", tmp_path / "outcomes")
    assert (tmp_path / "logs" / "predictions.jsonl").read_text("utf-8") == "{}\n"
