"""The service's prediction and feedback logs: JSON lines written off the request path.

What is written is `core.events`' format, exactly: one `PredictionEvent` line per scored
record and model in `predictions.jsonl`, one `FeedbackEvent` line per flag in `feedback.jsonl`,
each serialised by the event model itself (so the reader, `core.events.read_predictions`, and
this writer cannot disagree).

How, with the standard library only:
- the request thread hands over **one item per model call**, not per record
  (`PredictionBatch`: references to the validated records and the model's output arrays),
  through a `logging.handlers.QueueHandler`: a few microseconds per call, whatever the batch
  size, and never a wait;
- the queue is bounded by the **lines** waiting in it (params `service.log_queue_max`; one
  call brings up to 5,000 records per model), not by calls: a call that would take it past
  the bound is dropped, except that a call is always taken when nothing waits;
- a `QueueListener` thread turns each item into lines and writes them through
  `JsonLinesFile`, a `RotatingFileHandler` that rotates *before* a file would pass its size in
  bytes (`predictions.jsonl` -> `.1` -> `.2` ..., the oldest beyond the backup count deleted),
  with one write and one flush per item (and per rotation within it);
- the writer also computes each champion line's top reasons (TreeSHAP, ~1 ms a record,
  several times the model call), in chunks of REASONS_CHUNK records, within a CPU budget
  (params `service.log_reasons_cpu`, a share of one CPU, measured on the thread's own CPU
  clock): beyond it, lines are written without reasons until the budget refills, so that
  under load the reasons never take the CPU the requests need; while more than half of the
  bound waits behind it, or while the service shuts down, it writes the lines without
  reasons too, so that it catches up;
- nothing here can fail a request: a full queue drops the call, and a write that fails (a full
  disk, a read-only directory) loses its lines; each kind of trouble (lines lost, lines written
  without reasons) logs one warning when it starts and one line, with the count, when it ends;
- `stop()` (the service's shutdown hook) writes what is still queued, without reasons, for at
  most STOP_TIMEOUT_S, then gives up on the rest and says how many lines were lost.

The handlers sit on no logger: BentoML (re)configures the logging tree in its workers, and
`logging.config.dictConfig` closes every handler it finds there (`bentoml.monitor` calls it on
each monitor's first record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import logging.handlers
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from mlops_template.core.events import (
    FEEDBACK_FILE,
    PREDICTIONS_FILE,
    FeedbackEvent,
    PredictionEvent,
    Role,
)

log = logging.getLogger(__name__)
# Shutdown waits at most this long for the writer. A pod's grace period (40 s in deploy/k8s)
# covers the requests still running (timeout 30 s) and then this drain.
STOP_TIMEOUT_S: Final = 5.0
# Records explained at a time: between chunks the writer looks at its backlog again, so a
# large call stops costing reasons soon after the queue fills (256 x ~1.5 ms: under 0.5 s).
REASONS_CHUNK: Final = 256

Reasons = list[dict[str, Any]]
ReasonsOf = Callable[[Sequence[Mapping[str, Any]]], Sequence[Reasons | None]]


class Lines(Protocol):
    """What the queue carries: something that becomes JSON lines in the writer thread."""

    @property
    def size(self) -> int:
        """How many lines it becomes (what the queue's bound counts)."""
        ...

    def lines(self) -> Iterable[str]: ...


@dataclass(frozen=True, slots=True)
class PredictionBatch:
    """One model call's records and answers, expanded into `PredictionEvent` lines later.

    `rows` are the validated records' field mappings (the input as received, nulls for
    omitted optional fields); they and the arrays must not change after the hand-over.
    `request_ids` is one id for the whole call (`/predict`) or one per record (`/predict_one`,
    whose records come from different requests).
    """

    endpoint: str
    ts: datetime
    model_version: str
    role: Role
    request_ids: str | Sequence[str]
    keys: Sequence[str | int]
    rows: Sequence[Mapping[str, Any]]
    probability: np.ndarray
    contact: np.ndarray
    # The top reasons of each record (None: not logged for it), computed in the writer thread.
    reasons_of: ReasonsOf | None = None

    @property
    def size(self) -> int:
        return len(self.rows)

    def lines(self) -> Iterable[str]:
        ids = self.request_ids
        each = [ids] * len(self.rows) if isinstance(ids, str) else ids
        reasons: Sequence[Reasons | None] = (
            self.reasons_of(self.rows) if self.reasons_of else [None] * len(self.rows)
        )
        for request_id, key, row, p, c, why in zip(
            each, self.keys, self.rows, self.probability.tolist(), self.contact.tolist(),
            reasons, strict=True,
        ):  # fmt: skip
            yield PredictionEvent(
                request_id=request_id,
                ts=self.ts,
                endpoint=self.endpoint,
                model_version=self.model_version,
                role=self.role,
                key=key,
                features=dict(row),
                probability=p,
                contact=c,
                reasons=why,
            ).model_dump_json()


@dataclass(frozen=True, slots=True)
class Feedback:
    event: FeedbackEvent
    size: int = 1

    def lines(self) -> Iterable[str]:
        yield self.event.model_dump_json()


def _size(record: logging.LogRecord) -> int:
    item: Lines = record.msg  # type: ignore[assignment]
    return item.size


class _Trouble:
    """Warn once when a kind of trouble starts, say once when it stops, with the count of
    lines it cost; `lost` counts since it last stopped, `total` since the start."""

    def __init__(
        self,
        what: str,
        started: str = "these lines are lost (the service goes on; one line will say when "
        "writing works again)",
        ended: str = "writing again; {n} line(s) were lost",
    ) -> None:
        self.what = what
        self.started = started
        self.ended = ended
        self.lost = 0
        self.total = 0
        self._lock = threading.Lock()

    def failed(self, reason: object, lines: int = 1) -> None:
        with self._lock:
            first = self.lost == 0
            self.lost += lines
            self.total += lines
        if first:
            log.warning("%s: %s; %s", self.what, reason, self.started)

    def add(self, lines: int) -> None:
        """Count lines lost without the warning (the caller says more)."""
        with self._lock:
            self.lost += lines
            self.total += lines

    def succeeded(self) -> None:
        if self.lost:
            with self._lock:
                lost, self.lost = self.lost, 0
            log.warning("%s: %s", self.what, self.ended.format(n=lost))


class _CpuBudget:
    """A bucket of CPU seconds for the reasons: it refills at `share` seconds per second of
    wall time up to `burst` seconds, and a chunk may start while it holds any. `wall` and
    `cpu` are the clocks (tests replace them); `cpu` is the calling thread's own."""

    def __init__(
        self,
        share: float,
        burst: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("the reasons' CPU share must be in (0, 1]")
        self.share = share
        self.burst = burst
        self.tokens = burst
        self.wall = wall
        self.cpu = cpu
        self._last = wall()

    def available(self) -> bool:
        now = self.wall()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.share)
        self._last = now
        return self.tokens > 0

    def spend(self, seconds: float) -> None:
        self.tokens -= seconds


class _Shed:
    """Lines written without reasons because their CPU budget ran out: under load this is
    the normal state, so it is said once when it first happens and then at most once every
    `every` seconds, with the count since."""

    def __init__(self, what: str, share: float, every: float = 60.0) -> None:
        self.what = what
        self.share = share
        self.every = every
        self.total = 0
        self._pending = 0
        self._said: float | None = None

    def add(self, lines: int) -> None:
        self.total += lines
        self._pending += lines
        now = time.monotonic()
        if self._said is None:
            log.warning(
                "%s: the reasons are over their CPU budget (service.log_reasons_cpu, %.0f%% of "
                "one CPU): lines are written without them while it lasts (one line every "
                "%.0f s gives the count)",
                self.what,
                100 * self.share,
                self.every,
            )
        elif now - self._said >= self.every:
            log.warning(
                "%s: %d line(s) written without reasons over their CPU budget in the last %.0f s",
                self.what,
                self._pending,
                now - self._said,
            )
        else:
            return
        self._said, self._pending = now, 0


class _Backlog:
    """Lines handed over and not yet taken by the writer: what the queue's bound counts."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the queue's bound must be at least 1 line")
        self.limit = limit
        self.waiting = 0
        self._lock = threading.Lock()

    def admit(self, lines: int) -> bool:
        """Count the item in if it fits (an empty queue takes any one item); never waits."""
        with self._lock:
            if self.waiting and self.waiting + lines > self.limit:
                return False
            self.waiting += lines
            return True

    def taken(self, lines: int) -> None:
        with self._lock:
            self.waiting -= lines

    @property
    def high(self) -> bool:
        """More than half full: the writer should catch up rather than explain."""
        return self.waiting > self.limit / 2


class JsonLinesFile(logging.handlers.RotatingFileHandler):
    """A `RotatingFileHandler` for items of many lines: rotates before a file would pass
    `max_bytes` (a single longer line gets a file of its own), writes and flushes once per
    item, creates its directory when it first writes."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        if backups < 1:
            raise ValueError(
                "backups must be at least 1 (with 0, RotatingFileHandler never rotates)"
            )
        super().__init__(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
        self.trouble = _Trouble(f"log {path}")

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        item: Lines = record.msg  # type: ignore[assignment]
        written, lines = 0, []
        try:
            lines = list(item.lines())
            if self.stream is None:
                self.stream = self._open()
            size, start = self.stream.tell(), 0
            for i, line in enumerate(lines):
                # Bytes, as the file holds them: pydantic writes non-ASCII characters as UTF-8.
                n = len(line.encode("utf-8")) + 1
                if size and size + n > self.maxBytes:
                    written += self._write(lines[start:i])
                    start = i
                    self.doRollover()
                    self.stream = self._open()
                    size = 0
                size += n
            written += self._write(lines[start:])
        except Exception as exc:  # a log line must never take the service down
            self.trouble.failed(f"{type(exc).__name__}: {exc}", max(1, len(lines) - written))
            self._reset()
        else:
            self.trouble.succeeded()

    def _write(self, lines: list[str]) -> int:
        if lines and self.stream is not None:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        return len(lines)

    def _reset(self) -> None:
        """After a failed write, reopen on the next item (the disk may have room again)."""
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.trouble.failed("could not write")


class _Enqueue(logging.handlers.QueueHandler):
    """Hand the item over as it is (no formatting in the request thread); never wait."""

    def __init__(self, q: queue.Queue[Any], backlog: _Backlog, trouble: _Trouble) -> None:
        super().__init__(q)
        self.backlog = backlog
        self.trouble = trouble
        self.closed = False  # after stop(): nothing takes items any more

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        lines = _size(record)
        if self.closed:
            self.trouble.failed("the log writer has stopped (shutdown)", lines)
        elif not self.backlog.admit(lines):
            self.trouble.failed(
                f"the writer is {self.backlog.waiting:,} lines behind (the bound, "
                f"service.log_queue_max, is {self.backlog.limit:,})",
                lines,
            )
        else:
            self.queue.put_nowait(record)  # the queue itself is unbounded: never raises
            self.trouble.succeeded()


class _Listener(logging.handlers.QueueListener):
    """The writer thread: takes items off the backlog, has their reasons computed through
    `explain` (which may say no), and drops everything once `abandon()`ed."""

    def __init__(
        self,
        q: queue.Queue[Any],
        backlog: _Backlog,
        explain: Callable[[ReasonsOf, Sequence[Mapping[str, Any]]], list[Reasons | None]],
        *handlers: logging.Handler,
    ) -> None:
        super().__init__(q, *handlers)
        self.backlog = backlog
        self.explain = explain
        self.in_hand = 0  # lines of the item being written
        self.abandoned = False
        self._sentinel_sent = False

    def dequeue(self, block: bool) -> logging.LogRecord:
        record: logging.LogRecord = super().dequeue(block)
        if record is not self._sentinel:  # type: ignore[attr-defined]
            self.in_hand = _size(record)
            self.backlog.taken(self.in_hand)
        return record

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        item = record.msg
        if isinstance(item, PredictionBatch) and item.reasons_of is not None:
            record.msg = dataclasses.replace(
                item, reasons_of=functools.partial(self.explain, item.reasons_of)
            )
        return record

    def handle(self, record: logging.LogRecord) -> None:
        try:
            if not self.abandoned:
                super().handle(record)
        finally:
            self.in_hand = 0

    def stop_within(self, timeout: float) -> bool:
        """Ask the thread to finish what is queued; True when it has, within `timeout` s."""
        thread: threading.Thread | None = self._thread
        if thread is None:
            return True
        if not self._sentinel_sent:
            self._sentinel_sent = True
            self.enqueue_sentinel()  # the queue is unbounded: never waits
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._thread = None
        return True

    def abandon(self) -> None:
        """Drop whatever the thread has not written yet (it goes on only to empty the queue)."""
        self.abandoned = True


class Logbook:
    """The two logs of one service worker. `start()` once, `stop()` on shutdown.

    `queue_max` bounds the lines waiting for the writer (what one item becomes: a call's
    records, or one feedback flag); `reasons_cpu` is the share of one CPU the reasons may take
    (1: no bound); `reasons_chunk` is how many records are explained at a time (tests make it
    small); `budget` replaces the CPU budget (tests give it their clocks)."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        backups: int,
        queue_max: int,
        log_predictions: bool = True,
        reasons_cpu: float = 1.0,
        reasons_chunk: int = REASONS_CHUNK,
        budget: _CpuBudget | None = None,
    ) -> None:
        self.directory = directory
        self.log_predictions = log_predictions
        self.reasons_chunk = reasons_chunk
        self.queue: queue.Queue[Any] = queue.Queue()  # bounded by `backlog`, in lines
        self.backlog = _Backlog(queue_max)
        self.files = {
            name: JsonLinesFile(directory / name, max_bytes, backups)
            for name in (PREDICTIONS_FILE, FEEDBACK_FILE)
        }
        for name, handler in self.files.items():
            handler.addFilter(lambda record, name=name: record.name == name)  # type: ignore[misc]
        self._enqueue = _Enqueue(self.queue, self.backlog, _Trouble(f"log queue of {directory}"))
        self._unexplained = _Trouble(
            f"log queue of {directory}",
            started="predictions are logged without their reasons until it catches up",
            ended="reasons are logged again; {n} line(s) were logged without them",
        )
        self._budget = budget or _CpuBudget(reasons_cpu)
        self._shed = _Shed(f"log queue of {directory}", self._budget.share)
        self._listener = _Listener(self.queue, self.backlog, self._explain, *self.files.values())
        self._running = False
        self._stopping = False

    def start(self) -> None:
        if not self._running:
            self._listener.start()
            self._running = True

    def stop(self) -> None:
        """Write what is queued (without reasons) for at most STOP_TIMEOUT_S, stop the writer
        thread, close the files; what could not be written in time is counted as lost."""
        if not self._running:
            return
        self._running = False
        self._stopping = True  # from now on the writer skips reasons
        self._enqueue.closed = True
        if not self._listener.stop_within(STOP_TIMEOUT_S):
            left = self.backlog.waiting + self._listener.in_hand
            self._listener.abandon()
            self._enqueue.trouble.add(left)
            log.warning(
                "log writer did not finish within %.0f s of shutdown: about %d line(s) still "
                "queued are lost",
                STOP_TIMEOUT_S,
                left,
            )
            if not self._listener.stop_within(1.0):
                return  # still inside one write; leave the files to it (a daemon thread)
        for handler in self.files.values():
            handler.close()
        if self.lost or self.without_reasons:
            log.warning(
                "logs in %s closed: %d line(s) lost, %d written without reasons",
                self.directory,
                self.lost,
                self.without_reasons,
            )

    def flush(self) -> None:
        """Wait until everything handed over so far is written (tests, benchmarks)."""
        if self._running:
            self.queue.join()

    def predictions(self, *batches: PredictionBatch) -> None:
        if self.log_predictions:
            for batch in batches:
                self._hand_over(PREDICTIONS_FILE, batch)

    def feedback(self, event: FeedbackEvent) -> None:
        self._hand_over(FEEDBACK_FILE, Feedback(event))

    def _hand_over(self, name: str, item: Lines) -> None:
        try:
            self._enqueue.handle(logging.makeLogRecord({"name": name, "msg": item}))
        except Exception as exc:  # logging must never fail a request
            self._enqueue.trouble.failed(f"{type(exc).__name__}: {exc}")

    def _explain(
        self, reasons_of: ReasonsOf, rows: Sequence[Mapping[str, Any]]
    ) -> list[Reasons | None]:
        """The writer thread's reasons for `rows`, chunk by chunk, skipping a chunk (None for
        each of its records) while the backlog is high, the service is shutting down, or the
        CPU budget is spent."""
        out: list[Reasons | None] = []
        for start in range(0, len(rows), self.reasons_chunk):
            chunk = rows[start : start + self.reasons_chunk]
            if self._stopping:
                self._unexplained.failed("the service is shutting down", len(chunk))
            elif self.backlog.high:
                self._unexplained.failed(
                    f"the writer is {self.backlog.waiting:,} lines behind (more than half of "
                    f"service.log_queue_max, {self.backlog.limit:,})",
                    len(chunk),
                )
            elif not self._budget.available():
                self._shed.add(len(chunk))
            else:
                self._unexplained.succeeded()
                began = self._budget.cpu()
                out.extend(reasons_of(chunk))
                self._budget.spend(self._budget.cpu() - began)
                continue
            out.extend([None] * len(chunk))
        return out

    @property
    def lost(self) -> int:
        """Lines lost since writing last worked."""
        return self._enqueue.trouble.lost + sum(f.trouble.lost for f in self.files.values())

    @property
    def without_reasons(self) -> int:
        """Lines written without their reasons since the start (the writer was behind, or
        the reasons' CPU budget was spent)."""
        return self._unexplained.total + self._shed.total
