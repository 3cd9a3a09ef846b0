"""A customer base to score (`make sample`): the sample's records without the label, in seeded
chunks with distinct ids, valid for the scoring contract (the sample's own tests)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.validation import validate_records
from mlops_template.sample import parse_sample
from mlops_template.sample.__main__ import main
from mlops_template.sample.base import customer_base

pytestmark = pytest.mark.sample


def test_chunks_have_distinct_ids_no_label_and_pass_the_scoring_contract(params: Params) -> None:
    cfg = parse_sample(params.data.sample)
    frame = pd.concat(customer_base(cfg, 2_500, chunk_rows=700), ignore_index=True)
    assert len(frame) == 2_500
    assert TABLE.label.name not in frame.columns
    assert frame[TABLE.key].is_unique, "ids repeat across chunks"
    valid, failures = validate_records(frame)
    assert len(valid) == len(frame)
    assert failures.empty, failures.head().to_dict("records")
    again = pd.concat(customer_base(cfg, 2_500, chunk_rows=700), ignore_index=True)
    pd.testing.assert_frame_equal(frame, again)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_command_writes_the_file_whole(suffix: str, tmp_path: Path) -> None:
    out = tmp_path / f"base{suffix}"
    assert main(["--rows", "1234", "--chunk-rows", "500", "--out", str(out)]) == 0
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert len(frame) == 1234
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left
    assert main(["--rows", "0", "--out", str(tmp_path / "none.parquet")]) == 1
