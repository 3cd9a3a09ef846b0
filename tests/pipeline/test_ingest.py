"""Stage 1: the sample or a team's own CSV / Parquet file lands in data/raw."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops_template.core import io as files
from mlops_template.core.params import Params
from mlops_template.pipeline import ingest
from tests.support import DELETE, raw_params, set_dotted, team_table

pytestmark = pytest.mark.unit


def _params_file(tmp_path: Path, changes: dict[str, object]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(set_dotted(raw_params(), changes)), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ingest_reads_a_teams_own_file(tmp_path: Path, params: Params, suffix: str) -> None:
    frame = team_table(params, n_rows=150)
    source = tmp_path / f"mine{suffix}"
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_parquet(source, index=False)
    params_file = _params_file(tmp_path, {"data.source": str(source), "data.sample": DELETE})
    out = tmp_path / "raw" / "table.parquet"
    assert ingest.main(["--params", str(params_file), "--out", str(out)]) == 0
    got = files.read_table(out)
    assert len(got) == 150
    assert list(got.columns) == list(frame.columns)
    if suffix == ".parquet":
        pd.testing.assert_frame_equal(got, frame)


def test_missing_source_file_fails_with_its_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "exports" / "table.csv"
    params_file = _params_file(tmp_path, {"data.source": str(missing)})
    out = tmp_path / "raw.parquet"
    with caplog.at_level(logging.ERROR):
        code = ingest.main(["--params", str(params_file), "--out", str(out)])
    assert code == 1
    assert f"{missing}: file not found" in caplog.text
    assert "ingest failed" in caplog.text
    assert not out.exists()


def test_source_with_unknown_format_fails_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    odd = tmp_path / "table.xlsx"
    odd.write_bytes(b"PK")
    params_file = _params_file(tmp_path, {"data.source": str(odd)})
    with caplog.at_level(logging.ERROR):
        code = ingest.main(["--params", str(params_file), "--out", str(tmp_path / "o.parquet")])
    assert code == 1
    assert "table.xlsx: cannot tell the file format" in caplog.text
