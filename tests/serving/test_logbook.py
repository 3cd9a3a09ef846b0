"""The service's logbook on its own: the lines are `core.events`' format, files rotate before
they pass their size (in bytes) and the reader reads rotated files in order, the queue is
bounded by lines and sheds the reasons when it fills, nothing it meets (a full queue, a
directory it cannot write) raises into the caller, and stop() writes what is queued within a
bounded time."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlops_template.core import events
from mlops_template.core.errors import InputError
from mlops_template.core.events import (
    FEEDBACK_FILE,
    PREDICTIONS_FILE,
    FeedbackEvent,
    PredictionEvent,
    log_files,
    read_feedback,
    read_predictions,
)
from mlops_template.core.schema import TABLE
from mlops_template.serving import contract
from mlops_template.serving import logbook as logbook_module
from mlops_template.serving.logbook import Logbook, PredictionBatch
from tests.support import example_records

pytestmark = pytest.mark.unit

TS = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@functools.cache
def rows() -> list[dict[str, Any]]:
    """Validated records' fields, as the service hands them over."""
    return [contract.Record.model_validate(r).__dict__ for r in example_records()]


def batch(
    first: int, n: int, *, role: Any = "champion", endpoint: str = "predict"
) -> PredictionBatch:
    """`n` records keyed first, first + 1, ... (each request id names its position)."""
    base = rows()
    records = [base[i % len(base)] for i in range(n)]
    return PredictionBatch(
        endpoint=endpoint,
        ts=TS,
        model_version="0123456789ab",
        role=role,
        request_ids=[f"{first + i:016x}" for i in range(n)],
        keys=list(range(first, first + n)),
        rows=records,
        probability=np.linspace(0.0, 1.0, n) / 3.0,
        contact=np.arange(n) % 2 == 0,
    )


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Logbook]:
    logbook = Logbook(tmp_path / "logs", max_bytes=10_000, backups=50, queue_max=100)
    logbook.start()
    yield logbook
    logbook.stop()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_record_becomes_one_prediction_event_line(book: Logbook) -> None:
    sent = batch(0, 3)
    book.predictions(sent)
    book.flush()
    written = lines(book.directory / PREDICTIONS_FILE)
    assert len(written) == 3
    for i, line in enumerate(written):
        event = PredictionEvent.model_validate(line)  # the format, strictly (extra="forbid")
        assert event.request_id == sent.request_ids[i]
        assert event.ts == TS
        assert event.key == i
        assert event.features == sent.rows[i]
        assert event.probability == sent.probability[i]  # bitwise: JSON floats round-trip
        assert event.contact == bool(sent.contact[i])
        assert (event.role, event.endpoint, event.model_version) == (
            "champion", "predict", "0123456789ab",
        )  # fmt: skip
    assert set(written[0]["features"]) == {c.name for c in TABLE.input_columns}


def test_one_request_id_for_a_whole_batch(book: Logbook) -> None:
    book.predictions(dataclasses.replace(batch(0, 4), request_ids="feedfacefeedface"))
    book.flush()
    written = lines(book.directory / PREDICTIONS_FILE)
    assert [e["request_id"] for e in written] == ["feedfacefeedface"] * 4


def test_files_rotate_before_their_size_and_are_read_back_in_order(tmp_path: Path) -> None:
    max_bytes = 4_000
    book = Logbook(tmp_path, max_bytes=max_bytes, backups=100, queue_max=1000)
    book.start()
    n, per_batch = 0, 7
    for _ in range(30):
        book.predictions(batch(n, per_batch))
        n += per_batch
    book.stop()
    found = log_files(tmp_path, PREDICTIONS_FILE)
    assert len(found) > 5, f"{n} records in {max_bytes}-byte files should need many: {found}"
    sizes = {p.name: p.stat().st_size for p in found}
    assert all(size <= max_bytes for size in sizes.values()), sizes
    # Rotation keeps files as full as they can be: the next line would not have fitted.
    line_size = max(len(line) + 1 for p in found for line in p.read_text().splitlines())
    assert all(size > max_bytes - line_size for p, size in sizes.items() if p != PREDICTIONS_FILE)
    frame = read_predictions(tmp_path)
    assert frame["key"].tolist() == list(range(n)), "rotated files read oldest first, in order"
    assert frame["request_id"].tolist() == [f"{i:016x}" for i in range(n)]


def test_only_the_newest_backups_are_kept(tmp_path: Path) -> None:
    book = Logbook(tmp_path, max_bytes=2_000, backups=2, queue_max=1000)
    book.start()
    for i in range(40):
        book.predictions(batch(i * 3, 3))
    book.stop()
    names = sorted(p.name for p in log_files(tmp_path, PREDICTIONS_FILE))
    assert names == [PREDICTIONS_FILE, f"{PREDICTIONS_FILE}.1", f"{PREDICTIONS_FILE}.2"]
    keys = read_predictions(tmp_path)["key"].tolist()
    assert keys == sorted(keys), "in order"
    assert keys[-1] == 40 * 3 - 1, "the newest lines"


def test_a_line_longer_than_the_limit_gets_a_file_of_its_own(tmp_path: Path) -> None:
    book = Logbook(tmp_path, max_bytes=100, backups=10, queue_max=10)
    book.start()
    book.predictions(batch(0, 3))
    book.stop()
    found = log_files(tmp_path, PREDICTIONS_FILE)
    assert [len(p.read_text().splitlines()) for p in found] == [1, 1, 1]
    assert read_predictions(tmp_path)["key"].tolist() == [0, 1, 2]


def test_stop_writes_everything_still_queued(tmp_path: Path) -> None:
    book = Logbook(tmp_path, max_bytes=10**8, backups=1, queue_max=10_000)
    book.start()
    for i in range(500):
        book.predictions(batch(i * 2, 2))
    book.stop()  # no flush before: stop alone must drain the queue
    assert len(read_predictions(tmp_path)) == 1000


def test_feedback_lines_are_feedback_events(book: Logbook) -> None:
    event = FeedbackEvent(
        ts=TS, key="C00000001", reason="other", comment="é ✓ \n\"quoted\"", model_version="v",
        request_id="00000000000000ff",
    )  # fmt: skip
    book.feedback(event)
    book.flush()
    (line,) = (book.directory / FEEDBACK_FILE).read_text(encoding="utf-8").splitlines()
    assert FeedbackEvent.model_validate_json(line) == event
    assert read_feedback(book.directory)["comment"].tolist() == [event.comment]
    assert not (book.directory / PREDICTIONS_FILE).exists(), "feedback goes to its own file"


def test_predictions_off_writes_no_prediction_but_still_feedback(tmp_path: Path) -> None:
    book = Logbook(tmp_path, max_bytes=10_000, backups=1, queue_max=10, log_predictions=False)
    book.start()
    book.predictions(batch(0, 3))
    book.feedback(FeedbackEvent(ts=TS, key=1, reason="other", model_version="v"))
    book.stop()
    assert not (tmp_path / PREDICTIONS_FILE).exists()
    assert len(read_feedback(tmp_path)) == 1


def test_a_full_queue_drops_without_waiting_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    book = Logbook(tmp_path, max_bytes=10_000, backups=1, queue_max=2)  # writer not started
    with caplog.at_level(logging.WARNING, logger="mlops_template.serving.logbook"):
        for i in range(10):
            book.predictions(batch(i, 1))  # returns at once, never blocks
    assert book.lost == 8
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "behind" in warnings[0].getMessage()
    book.start()
    book.stop()
    assert read_predictions(tmp_path)["key"].tolist() == [0, 1], "what fitted is written"


def test_an_unwritable_directory_loses_lines_warns_once_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be", encoding="utf-8")
    book = Logbook(blocker, max_bytes=10_000, backups=1, queue_max=100)
    book.start()
    with caplog.at_level(logging.WARNING, logger="mlops_template.serving.logbook"):
        for i in range(5):
            book.predictions(batch(i, 2))
        book.flush()
        assert book.lost == 10
        blocker.unlink()  # room again
        book.predictions(batch(100, 2))
        book.flush()
    book.stop()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2, messages
    assert str(blocker / PREDICTIONS_FILE) in messages[0]
    assert "lost" in messages[0]
    assert "writing again; 10 line(s) were lost" in messages[1]
    assert read_predictions(blocker)["key"].tolist() == [100, 101]


def test_the_reader_leaves_a_half_written_last_line_for_the_next_read(book: Logbook) -> None:
    book.predictions(batch(0, 3))
    book.flush()
    path = book.directory / PREDICTIONS_FILE
    whole = path.read_bytes()
    path.write_bytes(whole + whole[: len(whole) // 5])  # the writer is in the middle of a line
    assert read_predictions(book.directory)["key"].tolist() == [0, 1, 2]


def test_rotation_counts_bytes_not_characters(tmp_path: Path) -> None:
    """pydantic writes non-ASCII characters as raw UTF-8: 2 to 4 bytes each."""
    max_bytes = 2_000
    book = Logbook(tmp_path, max_bytes=max_bytes, backups=100, queue_max=1000)
    book.start()
    wide = [{"text": "é✓𝄞" * 40}] * 5  # 120 characters, 360 bytes per record
    for i in range(6):
        book.predictions(dataclasses.replace(batch(i * 5, 5), rows=wide))
    book.stop()
    found = log_files(tmp_path, PREDICTIONS_FILE)
    sizes = {p.name: p.stat().st_size for p in found}
    assert len(found) > 2, sizes
    assert all(size <= max_bytes for size in sizes.values()), f"over {max_bytes} bytes: {sizes}"
    frame = read_predictions(tmp_path)
    assert frame["key"].tolist() == list(range(30))
    assert set(frame["text"]) == {wide[0]["text"]}


def test_the_queue_is_bounded_by_lines_not_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    book = Logbook(tmp_path, max_bytes=10**6, backups=1, queue_max=10)  # writer not started
    with caplog.at_level(logging.WARNING, logger="mlops_template.serving.logbook"):
        book.predictions(batch(0, 6))
        book.predictions(batch(6, 6))  # 12 lines would wait: dropped
        assert book.lost == 6, "counted in lines"
        book.predictions(batch(12, 4))  # 10: fits
    messages = [r.getMessage() for r in caplog.records]
    assert "6 lines behind" in messages[0], messages
    assert "log_queue_max, is 10" in messages[0], messages
    assert "6 line(s) were lost" in messages[1], messages
    book.start()
    book.stop()
    assert read_predictions(tmp_path)["key"].tolist() == [*range(6), *range(12, 16)]


def test_a_call_larger_than_the_bound_is_taken_when_nothing_waits(tmp_path: Path) -> None:
    book = Logbook(tmp_path, max_bytes=10**6, backups=1, queue_max=5)
    book.predictions(batch(0, 8))
    book.predictions(batch(8, 1))  # 9 would wait
    assert book.lost == 1
    book.start()
    book.stop()
    assert read_predictions(tmp_path)["key"].tolist() == list(range(8))


class Reasons:
    """A stand-in for the service's reasons: one entry per record, and a record of calls;
    `hold` (when set) makes the first call wait until released."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        self.calls.append(len(rows))
        self.entered.set()
        assert self.release.wait(30), "never released"
        return [[{"feature": "x", "value": 1, "contribution": 0.5}] for _ in rows]


def reasons_by_key(directory: Path) -> dict[int, Any]:
    return {e["key"]: e["reasons"] for e in lines(directory / PREDICTIONS_FILE)}


def test_a_high_backlog_writes_lines_without_reasons_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reasons = Reasons()
    book = Logbook(tmp_path, max_bytes=10**6, backups=1, queue_max=20, reasons_chunk=2)
    for i in range(5):  # 15 lines waiting before the writer starts: more than half of 20
        book.predictions(dataclasses.replace(batch(i * 3, 3), reasons_of=reasons))
    with caplog.at_level(logging.WARNING, logger="mlops_template.serving.logbook"):
        book.start()
        book.flush()
    # The first call leaves 12 lines waiting (> 10): it is written without reasons; the
    # second leaves 9: the writer has caught up and explains again, two records at a time.
    by_key = reasons_by_key(tmp_path)
    assert [k for k, r in by_key.items() if r is None] == [0, 1, 2]
    assert all(r == [{"feature": "x", "value": 1, "contribution": 0.5}]
               for k, r in by_key.items() if k > 2)  # fmt: skip
    assert reasons.calls == [2, 1] * 4, "explained in chunks"
    assert book.without_reasons == 3
    assert book.lost == 0
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2, messages
    assert "12 lines behind" in messages[0]
    assert "without their reasons" in messages[0]
    assert "3 line(s) were logged without them" in messages[1]
    book.stop()


class Clocks:
    """A wall clock the test moves, and a CPU clock each reasons call advances by `cost`."""

    def __init__(self, cost: float) -> None:
        self.now, self.used, self.cost = 0.0, 0.0, cost

    def wall(self) -> float:
        return self.now

    def cpu(self) -> float:
        return self.used


def test_the_reasons_stay_within_their_cpu_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clocks = Clocks(cost=0.4)
    reasons = Reasons()

    def costly(rows: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        clocks.used += clocks.cost  # what the writer thread's CPU clock would show
        return reasons(rows)

    budget = logbook_module._CpuBudget(0.1, burst=1.0, wall=clocks.wall, cpu=clocks.cpu)
    book = Logbook(
        tmp_path, max_bytes=10**6, backups=1, queue_max=1000, reasons_chunk=1, budget=budget
    )
    book.start()
    with caplog.at_level(logging.WARNING, logger="mlops_template.serving.logbook"):
        # A burst of 1 CPU-second pays for 3 chunks of 0.4 s (the third overdraws it).
        book.predictions(dataclasses.replace(batch(0, 5), reasons_of=costly))
        book.flush()
        clocks.now += 10.0  # 10 s at 10 % of a CPU refill the whole burst
        book.predictions(dataclasses.replace(batch(5, 2), reasons_of=costly))
        book.flush()
    book.stop()
    by_key = reasons_by_key(tmp_path)
    assert [k for k, r in by_key.items() if r is not None] == [0, 1, 2, 5, 6]
    assert book.without_reasons == 2
    assert book.lost == 0
    messages = [r.getMessage() for r in caplog.records if "CPU budget" in r.getMessage()]
    assert len(messages) == 1, "said once, not once per chunk"
    assert "service.log_reasons_cpu, 10% of one CPU" in messages[0]
    assert "2 written without reasons" in caplog.records[-1].getMessage(), "and counted"


def test_stop_writes_what_is_queued_without_reasons(tmp_path: Path) -> None:
    reasons = Reasons(hold=True)
    book = Logbook(tmp_path, max_bytes=10**6, backups=1, queue_max=1000)
    book.start()
    book.predictions(dataclasses.replace(batch(0, 1), reasons_of=reasons))
    assert reasons.entered.wait(30)  # the writer is explaining the first call
    for i in range(1, 4):
        book.predictions(dataclasses.replace(batch(i * 2, 2), reasons_of=reasons))
    stopping = threading.Thread(target=book.stop)
    stopping.start()
    while not book._stopping:  # stop() has begun
        time.sleep(0.01)
    reasons.release.set()
    stopping.join(30)
    assert not stopping.is_alive()
    by_key = reasons_by_key(tmp_path)
    assert sorted(by_key) == [0, *range(2, 8)], "everything queued is written"
    assert by_key[0] is not None, "the call in hand keeps its reasons"
    assert all(by_key[k] is None for k in range(2, 8)), "the rest is written without"
    assert book.without_reasons == 6
    assert reasons.calls == [1]


def test_stop_gives_up_after_its_timeout_and_counts_the_lines_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(logbook_module, "STOP_TIMEOUT_S", 0.3)
    reasons = Reasons(hold=True)  # a writer stuck in its first call (a slow disk, say)
    book = Logbook(tmp_path, max_bytes=10**6, backups=1, queue_max=1000)
    book.start()
    book.predictions(dataclasses.replace(batch(0, 4), reasons_of=reasons))
    assert reasons.entered.wait(30)
    for i in range(1, 6):
        book.predictions(batch(i * 10, 3))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="mlops_template.serving.logbook"):
        book.stop()
    took = time.monotonic() - started
    reasons.release.set()
    assert took < 0.3 + 1.0 + 1.0, f"stop() took {took:.1f} s"
    assert book.lost == 4 + 5 * 3, "the call in hand and everything queued behind it"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("did not finish within 0 s" in m and "19 line(s)" in m for m in messages), messages
    book.predictions(batch(100, 1))  # after stop: counted, never queued
    assert book.lost == 20


# --- reading the logs while the service rotates them -----------------------------------------


def rotated_logs(directory: Path, files: int = 3) -> tuple[Logbook, int]:
    """A log of `files` files (nothing deleted yet) and the number of lines in it."""
    book = Logbook(directory, max_bytes=3_000, backups=20, queue_max=1000)
    book.start()
    n = 0
    while len(log_files(directory, PREDICTIONS_FILE)) < files:
        book.predictions(batch(n, 2))
        n += 2
        book.flush()
    return book, n


def test_a_rotation_while_reading_neither_loses_nor_repeats_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, n = rotated_logs(tmp_path)
    read = events._read_lines
    rotations = []

    def rotate_after_the_first_file(path: Path) -> Any:
        frame = read(path)
        if not rotations:  # the service rotates: .2 -> .3, .1 -> .2, the file -> .1
            book.files[PREDICTIONS_FILE].doRollover()
            rotations.append(path.name)
        return frame

    monkeypatch.setattr(events, "_read_lines", rotate_after_the_first_file)
    keys = read_predictions(tmp_path)["key"].tolist()
    assert rotations == [f"{PREDICTIONS_FILE}.2"]
    assert keys == list(range(n)), "every line once, in order"
    book.stop()


def test_a_log_file_that_vanishes_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, n = rotated_logs(tmp_path, files=2)
    book.stop()
    listed = log_files(tmp_path, PREDICTIONS_FILE)
    gone = tmp_path / f"{PREDICTIONS_FILE}.7"  # listed, deleted before it is read
    monkeypatch.setattr(events, "log_files", lambda d, name: [gone, *listed])
    assert read_predictions(tmp_path)["key"].tolist() == list(range(n))


def test_a_line_met_in_two_files_is_read_once_but_kept_within_one(tmp_path: Path) -> None:
    book, _ = rotated_logs(tmp_path, files=1)
    book.stop()
    path = tmp_path / PREDICTIONS_FILE
    text = path.read_text(encoding="utf-8")
    first, *_ = text.splitlines(keepends=True)
    (tmp_path / f"{PREDICTIONS_FILE}.1").write_text(text, encoding="utf-8")  # a copy, say
    path.write_text(text + first, encoding="utf-8")  # and the first record scored again
    frame = read_predictions(tmp_path)
    assert frame["key"].tolist() == [*range(len(text.splitlines())), 0]
    feedback = FeedbackEvent(ts=TS, key=1, reason="other", model_version="v").model_dump_json()
    for name in (FEEDBACK_FILE, f"{FEEDBACK_FILE}.1"):
        (tmp_path / name).write_text(feedback + "\n", encoding="utf-8")
    assert len(read_feedback(tmp_path)) == 1


def test_a_malformed_log_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    book, _ = rotated_logs(tmp_path, files=1)
    book.stop()
    path = tmp_path / PREDICTIONS_FILE
    good = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([good[0], good[1][:40], *good[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"{PREDICTIONS_FILE}, line 2: not a JSON log line"):
        read_predictions(tmp_path)
    (tmp_path / FEEDBACK_FILE).write_text('{"ts": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match=rf"{FEEDBACK_FILE}, line 2: not a JSON object"):
        read_feedback(tmp_path)


def test_an_id_called_key_is_one_column_of_the_logs(tmp_path: Path) -> None:
    book = Logbook(tmp_path, max_bytes=10**6, backups=1, queue_max=100)
    book.start()
    keyed = [{"key": f"K{i}", "x": float(i)} for i in range(3)]
    book.predictions(dataclasses.replace(batch(0, 3), rows=keyed, keys=[r["key"] for r in keyed]))
    book.stop()
    frame = read_predictions(tmp_path)
    assert list(frame.columns).count("key") == 1
    assert frame["key"].tolist() == ["K0", "K1", "K2"]
    assert frame["x"].tolist() == [0.0, 1.0, 2.0]
