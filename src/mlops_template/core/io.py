"""Reading and writing the project's files safely.

Every write goes to a temporary file in the target directory and is renamed into place, so
a command that fails half-way never leaves a truncated table, model or metrics file behind
(and never replaces a good one). Written files get the usual permissions (0666 minus the
umask), not the 0600 of a temporary file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_template.core.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@functools.cache
def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; move it onto `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            tmp.chmod(0o666 & ~_umask())
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


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
