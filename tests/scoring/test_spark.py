"""The same scoring on a real local Spark (`local[2]`, loopback): the probabilities are bitwise
the in-process ones on the same input, invalid records are quarantined the same way, and the
summary is the same. Needs Java and the optional `spark` group; under CI it never skips."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import ROW_KEY, Table
from mlops_template.scoring.batch import main, score_table
from mlops_template.scoring.score import CONTACT, PROBABILITY, REASON
from tests.scoring.conftest import (
    TOLERATED,
    Trained,
    one_record_corruptions,
    params_file,
    without_id,
)
from tests.scoring.test_batch import corrupt_rows, read_output, typed_cases, write_parts
from tests.support import probabilities_differ, require

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]


@pytest.fixture(scope="module")
def spark(score_params: Params) -> Iterator[Any]:
    """One local Spark for the module: loopback only, workers on this venv's Python."""
    require(shutil.which("java") is not None, "Java 17+ is needed for Spark (openjdk-17-jre)")
    require(
        importlib.util.find_spec("pyspark") is not None,
        "pyspark is not installed: `uv sync --group spark` (make test adds it)",
    )
    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")}
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from mlops_template.scoring.spark import session

    try:
        with session("local[2]", score_params.score.chunk_rows) as active:
            yield active
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _same_output(spark_dir: Path, pandas_dir: Path, key: str) -> None:
    s_scores, s_quarantine, s_summary = read_output(spark_dir)
    p_scores, p_quarantine, p_summary = read_output(pandas_dir)
    s_scores = s_scores.sort_values(key, ignore_index=True)
    p_scores = p_scores.sort_values(key, ignore_index=True)
    assert s_scores[key].tolist() == p_scores[key].tolist(), "Spark scored other records"
    differ = probabilities_differ(
        s_scores[PROBABILITY].to_numpy(), p_scores[PROBABILITY].to_numpy()
    )
    assert differ == 0, f"{differ} of {len(s_scores)} probabilities differ from in-process"
    assert s_scores[CONTACT].tolist() == p_scores[CONTACT].tolist()
    assert list(s_scores.dtypes) == list(p_scores.dtypes)

    def reasons(q: pd.DataFrame) -> list[tuple[str, str]]:
        given = ["<missing>" if pd.isna(k) else str(k) for k in q[key]]
        return sorted(zip(given, q[REASON], strict=True))

    assert reasons(s_quarantine) == reasons(p_quarantine)
    assert s_summary.pop("engine") == "spark"
    assert p_summary.pop("engine") == "pandas"
    assert s_summary == p_summary


def _both(
    source: Path, tmp: Path, trained: Trained, params: Params, table: Table = TABLE, **spark: Any
) -> tuple[Path, Path]:
    in_process, on_spark = tmp / f"{source.name}-pandas", tmp / f"{source.name}-spark"
    score_table(source, in_process, trained.files, params, table=table)
    score_table(source, on_spark, trained.files, params, table=table, engine="spark", **spark)
    return on_spark, in_process


def test_spark_scores_a_parquet_directory_bitwise_like_in_process(
    spark: Any, base: pd.DataFrame, trained: Trained, score_params: Params, tmp_path: Path
) -> None:
    frame, where = corrupt_rows(base, typed_cases(base))
    source = write_parts(frame, tmp_path / "exports")
    in_process = tmp_path / "pandas"
    score_table(source, in_process, trained.files, score_params)
    # Through the command line, as `make score ENGINE=spark` runs it (the active session).
    on_spark = tmp_path / "spark"
    params = params_file(tmp_path, {"score.chunk_rows": 97, "score.max_invalid_share": TOLERATED})
    args = ["--input", str(source), "--output", str(on_spark), "--engine", "spark"]
    assert (
        main(
            [
                *args,
                "--params",
                str(params),
                "--model",
                str(trained.path),
                "--card",
                str(trained.card),
            ]
        )
        == 0
    )
    _same_output(on_spark, in_process, TABLE.key)
    assert read_output(on_spark)[2]["records"]["quarantined"] == len(where)


def test_spark_scores_a_csv_like_in_process_with_the_package_shipped(
    spark: Any, base: pd.DataFrame, trained: Trained, score_params: Params, tmp_path: Path
) -> None:
    frame, _ = corrupt_rows(base, one_record_corruptions())
    csv = tmp_path / "records.csv"
    # With a byte-order mark, as Excel writes it: both engines find the first column.
    frame.assign(**{TABLE.label.name: "unknown"}).to_csv(csv, index=False, encoding="utf-8-sig")
    # ship_package: what a real cluster gets (a zip of the package, SparkContext.addPyFile).
    _same_output(*_both(csv, tmp_path, trained, score_params, ship_package=True), TABLE.key)


def test_spark_numbers_rows_like_in_process_when_there_is_no_id(
    spark: Any, base: pd.DataFrame, trained: Trained, score_params: Params, tmp_path: Path
) -> None:
    frame, _ = corrupt_rows(base, [c for c in typed_cases(base) if c.column != TABLE.key])
    if TABLE.id is not None:
        frame = frame.drop(columns=[TABLE.id.name])
    source = write_parts(frame, tmp_path / "exports")
    _same_output(*_both(source, tmp_path, trained, score_params, table=without_id()), ROW_KEY)


def test_parts_the_driver_cannot_see_fail_the_run_saying_why(
    spark: Any,
    base: pd.DataFrame,
    trained: Trained,
    score_params: Params,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a cluster without a shared file system the executors write the parts to their own
    disks; here they go elsewhere than the driver looks, as they would there."""
    from mlops_template.scoring import spark as engine

    source = tmp_path / "records.parquet"
    base.to_parquet(source)
    elsewhere = tmp_path / "executor-disk"
    real = engine.uri
    monkeypatch.setattr(
        engine, "uri", lambda p: real(elsewhere) if p.name == engine.PARTS else real(p)
    )
    out = tmp_path / "out"
    with pytest.raises(InputError, match=f"scored {len(base):,} records, but the driver found 0"):
        score_table(source, out, trained.files, score_params, engine="spark")
    assert not out.exists()
    assert (elsewhere / "_SUCCESS").is_file(), "Spark wrote its parts where the driver never looks"


def test_fewer_records_in_the_parts_than_scored_is_an_error(tmp_path: Path) -> None:
    from mlops_template.scoring.spark import check_parts

    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "part-00000.parquet").write_bytes(b"")
    check_parts(parts, scored=10, merged=10, master="local[2]")
    with pytest.raises(InputError, match="same path on the driver and every executor"):
        check_parts(parts, scored=10, merged=4, master="spark://host:7077")
    with pytest.raises(InputError, match="0 part file"):
        check_parts(tmp_path / "none", scored=0, merged=0, master="spark://host:7077")
