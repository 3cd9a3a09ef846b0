"""Atomic writes and table reading with errors that name the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from mlops_template.core import io as storage
from mlops_template.core.errors import InputError

pytestmark = pytest.mark.unit


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_json_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "m.json"
    storage.write_json(target, {"a": 1, "b": [1.5, None]})
    assert storage.read_json(target) == {"a": 1, "b": [1.5, None]}


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old model")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_bytes(b"half a new mod")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        storage.write_bytes(target, half_then_crash)
    assert target.read_bytes() == b"old model"
    assert _leftovers(tmp_path) == []


def test_json_that_cannot_be_written_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    storage.write_json(target, {"roc_auc": 0.8})
    with pytest.raises(ValueError, match="JSON"):
        storage.write_json(target, {"roc_auc": float("nan")})  # NaN is not JSON
    assert storage.read_json(target) == {"roc_auc": 0.8}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_table_round_trip(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        storage.write_parquet(path, frame)
    pd.testing.assert_frame_equal(storage.read_table(path), frame, check_dtype=False)


def test_read_table_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        storage.read_table(path)


def test_read_table_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.csv: the file is empty"):
        storage.read_table(path)


def test_read_table_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"whatever")
    with pytest.raises(InputError, match=r"data\.xlsx: cannot tell the file format"):
        storage.read_table(path)


def test_read_table_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot be read as parquet"):
        storage.read_table(path)


def test_read_json_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"gone\.json: file not found"):
        storage.read_json(tmp_path / "gone.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON"):
        storage.read_json(bad)


@pytest.mark.parametrize(
    ("source", "fmt"),
    [
        ("data/x.csv", "csv"),
        ("data/x.CSV.gz", "csv"),
        ("https://example.org/x.parquet?token=abc", "parquet"),
        ("x.pq", "parquet"),
    ],
)
def test_table_format(source: str, fmt: str) -> None:
    assert storage.table_format(source) == fmt


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    payload = b"x" * (3 << 20) + b"tail"  # more than one chunk
    path.write_bytes(payload)
    assert storage.sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_written_files_respect_the_umask_not_the_temp_files_0600(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        storage._umask.cache_clear()
        target = tmp_path / "m.json"
        storage.write_json(target, {"a": 1})
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
    finally:
        os.umask(old)
        storage._umask.cache_clear()


def test_umask_is_public_and_read_without_changing_it() -> None:
    import os

    old = os.umask(0o027)
    try:
        storage._umask.cache_clear()
        assert storage.umask() == 0o027
        assert os.umask(0o027) == 0o027, "reading the umask changed it"
    finally:
        os.umask(old)
        storage._umask.cache_clear()


def test_files_written_together_change_together_or_not_at_all(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "sub" / "b.json"
    with storage.atomic_paths(a, b) as (tmp_a, tmp_b):
        tmp_a.write_bytes(b"a1")
        tmp_b.write_bytes(b"b1")

    def crash() -> None:
        with storage.atomic_paths(a, b) as (tmp_a, _):
            tmp_a.write_bytes(b"a2")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        crash()
    assert (a.read_bytes(), b.read_bytes()) == (b"a1", b"b1")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.bin", "b.json", "sub"]


def test_stop_signals_are_held_only_in_the_main_thread() -> None:
    import signal
    import threading

    with storage.stop_signals_held():
        held = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert signal.SIGTERM in held
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    seen: list[bool] = []

    def other() -> None:
        with storage.stop_signals_held():
            seen.append(signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [False]
