"""Stopping cleanly: after Ctrl-C, SIGTERM (a CI timeout) or the end of whatever started it, a
command writes nothing more.

`install` turns SIGINT / SIGTERM / SIGHUP into a `Stopped` exception in the main thread, so the
command unwinds: the atomic writes in progress (`io.atomic_path`) are abandoned, their
temporary files removed, and no target file is replaced after the stop. Every replace checks
`check()` first, so a stop that arrives between two writes (a model and its card) stops before
the second.

A pipeline stage also watches the processes that started it (DVC, the `uv run` or `make`
above it): DVC dies on SIGTERM without stopping the stage it started, which would then go on
and write its model after the pipeline was stopped. When any of them is gone, the stage
stops itself. A stage of a queued experiment watches its DVC queue worker and what runs
under it, not the command that started the queue (`owners`).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import psutil

_requested = threading.Event()
POLL_S = 0.2
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """The command was asked to stop; raised where it was."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise `Stopped` when a stop was requested (called before every file is replaced)."""
    if _requested.is_set():
        raise Stopped(signal.SIGTERM)


def _handle(signum: int, frame: FrameType | None) -> None:
    del frame
    _requested.set()
    raise Stopped(signum)


def _watch(parents: list[psutil.Process]) -> None:
    while not _requested.wait(POLL_S):
        for parent in parents:
            try:
                alive = parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                alive = False
            if not alive:
                _requested.set()
                os.kill(os.getpid(), signal.SIGTERM)
                return


def _dvc_args(process: psutil.Process) -> list[str] | None:
    """The arguments after `dvc` when `process` is DVC (`dvc ...`, `python -m dvc ...`), else
    None."""
    try:
        cmdline: list[str] = process.cmdline()
    except psutil.Error:
        return None
    for i, part in enumerate(cmdline):
        if Path(part).name == "dvc" or part == "dvc":
            return cmdline[i + 1 :]
    return None


def _is_dvc(process: psutil.Process) -> bool:
    return _dvc_args(process) is not None


def owners(parents: list[psutil.Process]) -> list[psutil.Process]:
    """The parents whose end must stop the stage: all of them, except those above a DVC
    queue worker (`dvc exp queue-worker`, under `dvc exp run --run-all` or `dvc queue
    start`). DVC keeps a queued experiment running when the command that started the queue
    exits or stops following it (Ctrl-C, a closed terminal, a timeout of the `make` above
    it); `dvc queue kill` ends the worker's `dvc exp exec-run`, which stops the stage."""
    for i, parent in enumerate(parents):
        if (_dvc_args(parent) or [])[:2] == ["exp", "queue-worker"]:
            return parents[: i + 1]
    return parents


def install(*, watch_parents: bool) -> None:
    """Handle the stop signals; with `watch_parents` (a DVC stage), also stop when a parent
    process ends, or at once when the DVC run that started the stage has already ended (it
    may die while the stage is still importing its libraries)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        signal.signal(signum, _handle)
    if not watch_parents:
        return
    parents = owners([p for p in psutil.Process().parents() if p.pid != 1])
    if not any(_is_dvc(p) for p in parents):
        _requested.set()
        raise Stopped(signal.SIGTERM)
    threading.Thread(target=_watch, args=(parents,), daemon=True, name="stop-watch").start()
