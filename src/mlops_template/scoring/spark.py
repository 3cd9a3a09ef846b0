"""The same scoring on Spark: `score.score_chunk` on every executor, through `mapInPandas`.

Nothing is re-implemented for Spark. The driver checks the model (`core.model.load_model`) and
broadcasts its file and card as bytes; each Python worker checks the bytes' sha256 against the
card again before unpickling (`load_model` on the worker) and keeps the model for its
lifetime. Spark reads the input (the files `source.py` found, in the same order, CSV values as
text), hands Arrow batches of `score.chunk_rows` rows to `score_chunk`, and writes what comes
back as Parquet parts. The driver then streams the parts into the same output files and
summary as the in-process engine (`output.py`, `campaign.py`).

For a table without an id column, the key is the row number in the input, as in process: the
row's file (in name order), its split of that file and its position in the split, numbered on
the cluster in one extra pass over the input.

Where the files are: the executors read the input, and write the parts into the run's
temporary directory next to OUTPUT, at the driver's own paths (as `file://` URIs, never
resolved against a cluster's default file system); the driver then reads the parts from its
disk. So with a `local[N]` master any local path works, and on a cluster the input and OUTPUT
must be on a file system mounted at the same path on the driver and every executor (NFS, a
mounted lake). HDFS or object-store URIs are not supported. When the driver finds fewer scored
records in the parts than the executors scored (parts written to the executors' own disks),
the run fails saying so, rather than writing a short output.

pyspark is imported here only, and only when this engine runs (the optional `spark`
dependency group). With a `local[N]` master the workers import this package from the
environment; any other master gets a zip of it (`SparkContext.addPyFile`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

import mlops_template
from mlops_template.core.errors import InputError, ModelIntegrityError
from mlops_template.core.io import sha256_bytes
from mlops_template.core.model import CARD_FILE, MODEL_FILE, LoadedModel, load_model
from mlops_template.core.params import Score
from mlops_template.core.table import Table
from mlops_template.scoring.campaign import Campaign
from mlops_template.scoring.output import Outputs
from mlops_template.scoring.score import (
    COLUMNS,
    CONTACT,
    PROBABILITY,
    REASON,
    ScoredChunk,
    score_chunk,
)
from mlops_template.scoring.source import Columns, Source

if TYPE_CHECKING:
    from pyspark.accumulators import Accumulator
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

PARTS: Final = "_spark_parts"  # inside the run's temporary output directory
_GIVEN_KEY: Final = "__given_key"  # the key of a quarantined record as the input gave it
_ROW: Final = "__row"  # a record's row number in the input (tables without an id)
_FILE, _SPLIT, _SEQ, _BASE = "__file", "__split", "__seq", "__base"
_MODELS: dict[tuple[str, Table], LoadedModel] = {}  # per Python worker: checked models


# --- on the executors ----------------------------------------------------------------------


def _worker_model(payload: tuple[bytes, bytes], table: Table) -> LoadedModel:
    """The broadcast model, checked against its card (sha256, fit) before it is unpickled,
    once per worker process."""
    model_bytes, card_bytes = payload
    key = (sha256_bytes(model_bytes), table)
    if key not in _MODELS:
        with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
            path, card = Path(tmp) / MODEL_FILE, Path(tmp) / CARD_FILE
            path.write_bytes(model_bytes)
            card.write_bytes(card_bytes)
            _MODELS[key] = load_model(path, card, table)
    return _MODELS[key]


def _pack(chunk: ScoredChunk, table: Table) -> pd.DataFrame:
    """Scores and quarantine of one batch as one frame of `_union_schema` (mapInPandas
    returns one schema). A field a row does not have is None: Spark cannot turn a NaN into
    a string or a list."""
    has_id = table.id is not None
    packed = chunk.scores.assign(
        **{REASON: None, COLUMNS: None}, **({_GIVEN_KEY: None} if has_id else {})
    )
    quarantine = chunk.quarantine
    if quarantine.empty:
        return packed
    given = quarantine[table.key].astype(object)
    rejected = pd.DataFrame(
        {
            table.key: None if has_id else given,
            PROBABILITY: np.nan,
            CONTACT: None,
            REASON: quarantine[REASON].astype(object),
            COLUMNS: quarantine[COLUMNS],
            **({_GIVEN_KEY: given} if has_id else {}),
        },
        index=quarantine.index,
    )
    return pd.concat([packed, rejected], ignore_index=True)


def _score_batches(
    batches: Iterator[pd.DataFrame],
    payload: Broadcast[tuple[bytes, bytes]],
    table: Table,
    threads: int,
    source: str,
    records: Accumulator[int],
) -> Iterator[pd.DataFrame]:
    from threadpoolctl import threadpool_limits

    model = _worker_model(payload.value, table)
    with threadpool_limits(limits=threads):
        for batch in batches:
            rows = batch.pop(_ROW).to_numpy() if _ROW in batch.columns else None
            records.add(len(batch))
            yield _pack(score_chunk(batch, model, rows, source), table)


# --- on the driver ----------------------------------------------------------------------------


def _union_schema(table: Table) -> Any:
    from pyspark.sql import types as st

    key: Any = (
        st.StringType() if table.id is not None and table.id.dtype == "str" else st.LongType()
    )
    fields = [
        st.StructField(table.key, key),
        st.StructField(PROBABILITY, st.DoubleType()),
        st.StructField(CONTACT, st.BooleanType()),
        st.StructField(REASON, st.StringType()),
        st.StructField(COLUMNS, st.ArrayType(st.StringType())),
    ]
    if table.id is not None:
        fields.append(st.StructField(_GIVEN_KEY, st.StringType()))
    return st.StructType(fields)


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def uri(path: Path) -> str:
    """A driver path as a `file://` URI: the same file on every executor of a cluster whose
    nodes mount it at the same path, and never a path on the cluster's default file system."""
    return path.resolve().as_uri()


def read_input(spark: SparkSession, source: Source, columns: Columns, rows: bool) -> DataFrame:
    """The input's contract columns as Spark reads them (CSV as text, like `source.py`); with
    `rows`, also each record's row number in the input."""
    from pyspark.sql import functions as sf
    from pyspark.sql import types as st

    paths = [uri(f) for f in source.files]
    if source.format == "csv":
        schema = st.StructType([st.StructField(n, st.StringType()) for n in source.columns])
        frame = (
            spark.read.schema(schema)
            .option("header", True)
            .option("mode", "FAILFAST")  # a malformed line fails the run, as in process
            .option("escape", '"')  # RFC 4180 quotes, as pandas and pyarrow write them
            .csv(paths)
        )
    else:
        frame = spark.read.parquet(*paths)
    selected = [sf.col(_quoted(n)) for n in columns.read]
    if not rows:
        return frame.select(*selected)
    marked = frame.select(
        *selected,
        sf.col("_metadata.file_name").alias(_FILE),
        sf.col("_metadata.file_block_start").alias(_SPLIT),
        sf.monotonically_increasing_id().alias(_SEQ),
    )
    return _numbered(spark, marked, source, list(columns.read))


def _numbered(
    spark: SparkSession, marked: DataFrame, source: Source, names: list[str]
) -> DataFrame:
    """Row numbers in input order: within a split of a file, Spark's sequence ids run in
    order; the splits' sizes and first ids (one aggregation) give every split its offset."""
    from pyspark.sql import functions as sf

    order = {f.name: i for i, f in enumerate(source.files)}
    splits = marked.groupBy(_FILE, _SPLIT).agg(
        sf.count(sf.lit(1)).alias("n"), sf.min(_SEQ).alias("first")
    )
    found = sorted(splits.collect(), key=lambda r: (order.get(r[_FILE], -1), r[_SPLIT]))
    unknown = [r[_FILE] for r in found if r[_FILE] not in order]
    if unknown:
        raise InputError(f"{source}: Spark read files it was not given: {unknown}")
    bases, start = [], 0
    for r in found:
        bases.append((r[_FILE], r[_SPLIT], start - r["first"]))
        start += r["n"]
    offsets = spark.createDataFrame(bases, f"{_FILE} string, {_SPLIT} long, {_BASE} long")
    return marked.join(sf.broadcast(offsets), [_FILE, _SPLIT]).select(
        *[sf.col(_quoted(n)) for n in names], (sf.col(_SEQ) + sf.col(_BASE)).alias(_ROW)
    )


def package_zip(directory: Path) -> Path:
    """A zip of this package's Python files for the workers of a real cluster, named by its
    content (the same code is the same file, so Spark accepts it again in a session)."""
    root = Path(mlops_template.__file__).parent
    sources = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for p in sources:
        digest.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    target = directory / f"{root.name}-{digest.hexdigest()[:12]}.zip"
    if not target.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sources:
                zf.write(p, Path(root.name) / p.relative_to(root))
        tmp.replace(target)
    return target


@contextlib.contextmanager
def session(master: str, chunk_rows: int, progress: bool = False) -> Iterator[SparkSession]:
    """The active Spark session (a notebook's, a test's), or a new one on `master`, stopped at
    the end (Spark's progress bar with `progress`). A local master binds to the loopback and
    runs its workers on this Python."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "pyspark is not installed: `make score ENGINE=spark` adds the optional `spark` "
            "dependency group (or `uv sync --group spark`)"
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        log.info("using the active Spark session (master %s)", active.sparkContext.master)
        active.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
        yield active
        return
    builder = (
        SparkSession.builder.master(master)
        .appName("mlops-template-scoring")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", str(progress).lower())
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
    )
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    log.info("starting Spark (master %s)", master)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        yield spark
    finally:
        spark.stop()


def _payload(model: LoadedModel, path: Path, card: Path) -> tuple[bytes, bytes]:
    model_bytes = path.read_bytes()
    if sha256_bytes(model_bytes) != model.sha256:
        raise ModelIntegrityError(f"{path}: changed since it was loaded; refusing to ship it")
    return model_bytes, card.read_bytes()


def run_job(
    spark: SparkSession,
    source: Source,
    columns: Columns,
    model: LoadedModel,
    model_files: tuple[Path, Path],
    parts: Path,
    ship_package: bool,
) -> int:
    """Score the input on the cluster into Parquet parts under `parts`; how many records the
    executors scored (valid or not)."""
    sc = spark.sparkContext
    if ship_package:
        sc.addPyFile(str(package_zip(Path(tempfile.gettempdir()) / "mlops-template-spark")))
    payload = sc.broadcast(_payload(model, *model_files))
    records = sc.accumulator(0)
    table, label = model.table, str(source)
    threads = int(sc.getConf().get("spark.task.cpus", "1"))
    try:
        frame = read_input(spark, source, columns, rows=table.id is None)
        scored = frame.mapInPandas(
            lambda batches: _score_batches(batches, payload, table, threads, label, records),
            schema=_union_schema(table),
        )
        scored.write.parquet(uri(parts))
    finally:
        payload.destroy()
    return int(records.value)


def check_parts(parts: Path, scored: int, merged: int, master: str) -> None:
    """The driver found every record the executors scored in the parts (none are missing
    because they went to the executors' own disks)."""
    found = sorted(parts.glob("part-*.parquet")) if parts.is_dir() else []
    if found and merged >= scored:
        return
    raise InputError(
        f"Spark (master {master}) scored {scored:,} records, but the driver found "
        f"{merged:,} in {len(found)} part file(s) under {parts}: the executors wrote them "
        "where the driver cannot read them. With a cluster master, the input and OUTPUT must "
        "be on a file system mounted at the same path on the driver and every executor "
        "(README: 'The same scoring on Spark'); nothing was written."
    )


def merge_parts(parts: Path, model: LoadedModel, directory: Path, batch_rows: int) -> Campaign:
    """Stream Spark's parts into the run's output files; the campaign's totals."""
    table = model.table
    campaign = Campaign(check_keys=table.id is not None)
    with Outputs(directory, model) as outputs:
        for part in sorted(parts.glob("part-*.parquet")):
            for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows):
                valid = pc.is_null(batch.column(REASON))
                scores = batch.filter(valid).select([table.key, PROBABILITY, CONTACT])
                key = _GIVEN_KEY if table.id is not None else table.key
                quarantine = (
                    batch.filter(pc.invert(valid))
                    .select([key, REASON, COLUMNS])
                    .rename_columns([table.key, REASON, COLUMNS])
                )
                chunk = ScoredChunk(scores.to_pandas(), quarantine.to_pandas())
                outputs.write(chunk)
                campaign.add(chunk)
    return campaign


def score(
    source: Source,
    columns: Columns,
    model: LoadedModel,
    cfg: Score,
    directory: Path,
    model_files: tuple[Path, Path],
    *,
    master: str = "local[2]",
    ship_package: bool | None = None,
    progress: bool = False,
) -> Campaign:
    """Score `source` on Spark into `directory` (the run's temporary output directory), with
    `model` (checked on the driver) shipped from `model_files` (its file and card). The
    package is shipped as a zip with `ship_package`, by default when the master is not local.
    `directory` and the input must be at the same paths on the executors (module docstring)."""
    parts = directory / PARTS
    started = time.perf_counter()
    with session(master, cfg.chunk_rows, progress) as spark:
        used = str(spark.sparkContext.master)
        ship = not used.startswith("local") if ship_package is None else ship_package
        ready = time.perf_counter()
        scored = run_job(spark, source, columns, model, model_files, parts, ship)
        done = time.perf_counter()
        log.info("Spark: session %.1f s, scoring job %.1f s", ready - started, done - ready)
    try:
        campaign = merge_parts(parts, model, directory, cfg.chunk_rows)
        check_parts(parts, scored, campaign.read, used)
        log.info("merged Spark's parts into the output in %.1f s", time.perf_counter() - done)
        return campaign
    finally:
        shutil.rmtree(parts, ignore_errors=True)
