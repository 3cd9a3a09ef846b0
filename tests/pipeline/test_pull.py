"""`make pull-data` on hand-made `.dvc` files (no DVC run): every `out` of a file is pulled and
checked, and a broken `.dvc` file is an error naming it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops_template.core.errors import InputError
from mlops_template.pipeline import pull

pytestmark = pytest.mark.unit


def _meta(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


TWO_OUTS = """\
outs:
- md5: 0123456789abcdef0123456789abcdef
  path: customers.csv
- md5: fedcba9876543210fedcba9876543210
  path: extra/regions.parquet
"""


def test_every_out_of_a_dvc_file_is_tracked(tmp_path: Path) -> None:
    meta = _meta(tmp_path / "data" / "raw.dvc", TWO_OUTS)
    (tmp_path / ".dvc").mkdir()  # DVC's own directory matches *.dvc: not a .dvc file
    _meta(tmp_path / ".dvc" / "cache" / "x.dvc", "not: yaml: at all: [")
    _meta(tmp_path / ".venv" / "lib" / "pkg.dvc", TWO_OUTS)
    assert pull.tracked_sources(tmp_path) == {
        meta: (tmp_path / "data" / "customers.csv", tmp_path / "data" / "extra" / "regions.parquet")
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("outs: [\n  - path: a.csv\n", "cannot be read as a .dvc file"),
        ("outs:\n- md5: 0123\n", r"outs\[0\] has no `path`"),
        ("outs:\n- path: a.csv\n- md5: 0123\n", r"outs\[1\] has no `path`"),
        ("md5: 0123\n", "expected a list `outs`"),
        ("", "expected a list `outs`"),
    ],
    ids=["yaml-error", "no-path", "second-no-path", "no-outs", "empty"],
)
def test_a_broken_dvc_file_is_an_error_naming_it(tmp_path: Path, text: str, says: str) -> None:
    _meta(tmp_path / "data" / "raw.dvc", text)
    with pytest.raises(InputError, match=says) as info:
        pull.tracked_sources(tmp_path)
    assert str(info.value).startswith("data/raw.dvc: "), str(info.value)


def test_a_missing_out_is_named_with_its_dvc_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _meta(tmp_path / "data" / "raw.dvc", TWO_OUTS)
    (tmp_path / "data" / "customers.csv").write_text("id\n1\n", encoding="utf-8")

    def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["dvc", *args], 0, stdout="", stderr="")

    monkeypatch.setattr(pull, "_dvc", dvc)
    with pytest.raises(InputError) as info:
        pull.pull(tmp_path)
    message = str(info.value)
    assert "could not fetch data/extra/regions.parquet (data/raw.dvc)" in message
    assert "customers.csv" not in message, "a file that is there is not reported missing"
    (tmp_path / "data" / "extra").mkdir()
    (tmp_path / "data" / "extra" / "regions.parquet").write_bytes(b"PAR1")
    assert pull.pull(tmp_path) == [
        tmp_path / "data" / "customers.csv",
        tmp_path / "data" / "extra" / "regions.parquet",
    ]
