"""The output directory is replaced whole: never by changing the process umask, and a swap that
a killed run left half-done (the previous output parked as `.OUTPUT.old`) is finished by the
next run."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlops_template.core import io as files
from mlops_template.scoring.output import SUMMARY, atomic_directory, previous_output

pytestmark = pytest.mark.unit


def _output(directory: Path, text: str) -> Path:
    directory.mkdir()
    (directory / SUMMARY).write_text(text, encoding="utf-8")
    return directory


def _summary(directory: Path) -> str:
    return (directory / SUMMARY).read_text(encoding="utf-8")


def test_the_output_gets_the_umask_without_it_being_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.umask()  # read (cached) before os.umask is forbidden below

    def forbidden(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:o}) changes the umask of every thread")

    monkeypatch.setattr(os, "umask", forbidden)
    target = tmp_path / "scored"
    with atomic_directory(target) as tmp:
        (tmp / SUMMARY).write_text("{}", encoding="utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~files.umask()


def test_a_previous_output_parked_by_a_killed_run_is_put_back(tmp_path: Path) -> None:
    target = tmp_path / "scored"
    _output(previous_output(target), "previous")  # killed between its two renames
    with pytest.raises(RuntimeError, match="fails"), atomic_directory(target):
        raise RuntimeError("this run fails too")
    assert _summary(target) == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]


def test_a_parked_output_left_after_the_swap_is_removed(tmp_path: Path) -> None:
    target = _output(tmp_path / "scored", "new")
    _output(previous_output(target), "previous")  # killed while removing it
    with atomic_directory(target) as tmp:
        (tmp / SUMMARY).write_text("newer", encoding="utf-8")
    assert _summary(target) == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]


def test_a_failed_swap_puts_the_previous_output_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _output(tmp_path / "scored", "previous")
    real = Path.rename

    def rename(self: Path, to: Path) -> Path:
        if self.name.endswith(".tmp") and Path(to) == target:
            raise OSError(5, "I/O error")
        return real(self, to)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="I/O error"), atomic_directory(target) as tmp:
        (tmp / SUMMARY).write_text("new", encoding="utf-8")
    assert _summary(target) == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scored"]
