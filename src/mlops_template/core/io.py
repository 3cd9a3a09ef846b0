"""Reading and writing the project's files safely.

Every write goes to a temporary file in the target directory and is renamed into place, so
a command that fails half-way never leaves a truncated table, model or metrics file behind
(and never replaces a good one). Written files get the usual permissions (0666 minus the
umask), not the 0600 of a temporary file. Files that must change together (a model and its
card) are replaced together, or not at all (`atomic_paths`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_template.core import stopping
from mlops_template.core.errors import InputError

log = logging.getLogger(__name__)
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@functools.cache
def _umask() -> int:
    """The process umask, read once (without changing it where /proc allows: elsewhere it is
    set and put back once, at the first call)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


def umask() -> int:
    """The process umask, for permissions of files and directories created under temporary
    names (0o666 / 0o777 minus it). Cached: `_umask.cache_clear()` after changing it."""
    return _umask()


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold the stop signals (`stopping.SIGNALS`) until the block ends, so that the renames in
    it all happen before a Ctrl-C or SIGTERM is handled (it is handled right after the block).
    Only the main thread runs Python's signal handlers, so elsewhere (and where the platform
    has no `pthread_sigmask`) there is nothing to hold and the block just runs."""
    previous: set[int | signal.Signals] | None = None
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask"):
        with contextlib.suppress(OSError, ValueError):  # else: the block runs unprotected
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, stopping.SIGNALS)
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _temporary(target: Path) -> Iterator[Path]:
    """A new empty file next to `target` (so a rename onto it stays on one file system),
    removed at the end unless it was moved away."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _permit(tmp: Path) -> None:
    if tmp.is_file():
        tmp.chmod(0o666 & ~umask())


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; move it onto `target` only on success."""
    target = Path(target)
    with _temporary(target) as tmp:
        yield tmp
        _permit(tmp)
        stopping.check()  # never replace a file after a stop
        tmp.replace(target)


def _backup(target: Path, stack: contextlib.ExitStack) -> Path | None:
    """A copy of `target` as it is now, next to it (a hard link where the file system has
    them), removed when `stack` closes; None when there is no `target`."""
    if not target.exists():
        return None
    directory = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".bak", dir=target.parent))
    stack.callback(shutil.rmtree, directory, True)
    backup = directory / target.name
    try:
        os.link(target, backup)
    except OSError:
        shutil.copy2(target, backup)
    return backup


def _put_back(replaced: list[tuple[Path, Path | None]]) -> None:
    """Undo the replaces done so far: each target as it was (absent if it was absent)."""
    for target, backup in reversed(replaced):
        try:
            if backup is None:
                target.unlink(missing_ok=True)
            else:
                backup.replace(target)
        except OSError as exc:
            log.error("%s: could not be put back as it was (%s)", target, exc)


@contextlib.contextmanager
def atomic_paths(*targets: str | Path) -> Iterator[tuple[Path, ...]]:
    """`atomic_path` for files that must change together (a model and its card): a temporary
    path per target; on success every target is replaced, otherwise none is.

    A stop is checked once, before the first replace, and held off (`stop_signals_held`) until
    the last one is done. If a replace fails (an OSError), the targets already replaced are put
    back as they were, from a backup of each taken just before (a hard link, or a copy)."""
    paths = [Path(t) for t in targets]
    with contextlib.ExitStack() as stack:
        temps = tuple(stack.enter_context(_temporary(target)) for target in paths)
        yield temps
        for tmp in temps:
            _permit(tmp)
        stopping.check()  # never replace any of them after a stop
        backups = [_backup(target, stack) for target in paths]
        replaced: list[tuple[Path, Path | None]] = []
        with stop_signals_held():
            try:
                for tmp, target, backup in zip(temps, paths, backups, strict=True):
                    tmp.replace(target)
                    replaced.append((target, backup))
            except BaseException:
                _put_back(replaced)
                raise


def write_bytes(target: str | Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` on a temporary path, then move it onto `target`."""
    with atomic_path(target) as tmp:
        write(tmp)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def dumps_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_json(target: str | Path, payload: Any) -> None:
    write_text(target, dumps_json(payload))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def write_parquet(target: str | Path, frame: pd.DataFrame) -> None:
    write_bytes(target, lambda tmp: frame.to_parquet(tmp, index=False))


def table_format(source: str) -> str:
    """'csv' or 'parquet', from the file name of a path or URL (query strings ignored)."""
    name = source.split("?", 1)[0].lower()
    for suffix in TABLE_SUFFIXES:
        if name.endswith(suffix) or name.endswith(suffix + ".gz"):
            return "csv" if suffix == ".csv" else "parquet"
    raise InputError(
        f"{source}: cannot tell the file format; use a name ending in {', '.join(TABLE_SUFFIXES)}"
    )


def read_table(source: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table from a local path or URL, with errors naming the source."""
    source = str(source)
    fmt = table_format(source)
    is_url = "://" in source
    if not is_url and not Path(source).is_file():
        raise InputError(f"{source}: file not found")
    try:
        if fmt == "csv":
            return pd.read_csv(source)
        return pd.read_parquet(source)
    except pd.errors.EmptyDataError:
        raise InputError(f"{source}: the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError, ImportError) as exc:
        raise InputError(f"{source}: cannot be read as {fmt}: {exc}") from None


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (md5 is what dvc.lock records)."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def sha256_file(path: str | Path) -> str:
    return file_digest(path, "sha256")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a new empty directory next to `target`; on success it replaces `target` whole
    (a previous `target` is removed), on any failure or stop it is removed and `target` is
    left as it was. For outputs of several files that belong together (an audit pack).

    Between the two renames `target` is briefly absent; the stop signals are held for them
    (`stop_signals_held`), and a failed second rename puts the previous `target` back."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~umask())
        stopping.check()  # never replace the output after a stop
        old = target.with_name(f"{tmp.name}.old")
        with stop_signals_held():
            if target.exists():
                target.rename(old)
            try:
                tmp.rename(target)
            except BaseException:
                if old.exists():
                    old.rename(target)
                raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
