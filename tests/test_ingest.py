"""Stage 1: the sample or a team's own CSV / Parquet file lands in data/raw."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import raw_params, set_dotted
from mlops_template import ingest, storage
from mlops_template.params import Params, load_params
from mlops_template.sample import generate_customers

pytestmark = pytest.mark.unit


def _params_file(tmp_path: Path, changes: dict[str, object]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(set_dotted(raw_params(), changes)), encoding="utf-8")
    return path


def test_ingest_sample_writes_the_generated_table(tmp_path: Path) -> None:
    params_file = _params_file(tmp_path, {"data.sample.n_rows": 300})
    out = tmp_path / "raw" / "customers.parquet"
    assert ingest.main(["--params", str(params_file), "--out", str(out)]) == 0
    written = storage.read_table(out)
    assert len(written) == 300
    params = load_params(params_file)
    pd.testing.assert_frame_equal(written, generate_customers(params.data.sample))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ingest_reads_a_teams_own_file(tmp_path: Path, params: Params, suffix: str) -> None:
    frame = generate_customers(params.data.sample.model_copy(update={"n_rows": 150}))
    source = tmp_path / f"mine{suffix}"
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_parquet(source, index=False)
    data = params.data.model_copy(update={"source": str(source)})
    got = ingest.ingest(data)
    assert len(got) == 150
    assert list(got.columns) == list(frame.columns)


def test_missing_source_file_fails_with_its_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "exports" / "customers.csv"
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
    odd = tmp_path / "customers.xlsx"
    odd.write_bytes(b"PK")
    params_file = _params_file(tmp_path, {"data.source": str(odd)})
    with caplog.at_level(logging.ERROR):
        code = ingest.main(["--params", str(params_file), "--out", str(tmp_path / "o.parquet")])
    assert code == 1
    assert "customers.xlsx: cannot tell the file format" in caplog.text
