"""Benchmark serving: what adaptive batching buys over one-model-call-per-request.

Measured in one run, all on loopback, each phase bounded in time:
1. in process: the model on 1-row and 1,000-row batches of validated records, through the
   service's own path (`LoadedModel.probability_of_rows`: no frame, no HTTP, no JSON; the
   physical limit);
2. a naive FastAPI + uvicorn server with the same model, the same request contract and the
   same fast scoring path, one record per request, one model call per request, under
   CONCURRENCY concurrent clients, in two variants (a `def` endpoint in FastAPI's thread pool,
   an `async def` endpoint on the event loop); the faster one is the baseline;
3. this BentoML service (the bento `make bento` built): `/predict_one` under the same
   CONCURRENCY concurrent clients (adaptive batching merges their records into one model
   call), and `/predict` with 1,000-record requests, each twice: with prediction logging on
   (as shipped) and off (MLOPS_LOG_PREDICTIONS=false), to price the logs;
4. in process, what the logs and a shadow challenger add to one model call: the request
   thread's hand-over to the log writer, the writer's own rate, and a second model call on
   the same rows (the bento's challenger if it has one, else the champion again: the same
   work).

Reported: throughput (records/s) and p50/p99 latency, and the ratios the goals are set for
(the TARGET_* constants below): one record in process within 3 ms, single-record throughput
>= 10x the naive server with a p99 at most half of its, the batch endpoint >= 50% of the
in-process 1,000-row throughput, and prediction logging costing at most 10% of
`/predict_one`'s throughput.

    make bench-serving                                   # builds the bento first
    uv run python benchmarks/serving.py --duration 5     # a quick run

Every model call, in process and in both servers, uses --threads OpenMP threads (default 1:
on a small or busy host, scikit-learn's OpenMP threads waiting for each other make calls
several times slower). One server process (one worker) each.

Results: benchmarks/results/serving.json and serving.md. The load generator (aiohttp) runs on
the same machine as the servers and takes CPU from them; it does so for both servers alike.
Figures move with the machine's load: the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from common import held_out_records, loadavg

from mlops_template.core.params import LOG_DIR_ENV
from mlops_template.serving.build.smoke import free_port, stop_group
from mlops_template.serving.service import (
    LOG_PREDICTIONS_ENV,
    MODEL_THREADS_ENV,
    SINGLE_MAX_BATCH_SIZE,
    SINGLE_MAX_LATENCY_MS,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENTO_INFO = ROOT / "build" / "bento.json"
CONCURRENCY = 32
# The naive server (the baseline of the targets): one record per request through the pipeline's
# scoring API (a one-row frame), as a team would write it first; `sync` runs it in FastAPI's
# thread pool, `async` on the event loop. `rows` is a reference only: the same server on the
# service's own frame-free row path, to show what batching alone buys.
NAIVE_MODES = ("sync", "async")
NAIVE_REFERENCE_MODES = ("rows",)
BATCH_ROWS = 1_000
BATCH_CONCURRENCY = 2  # one request in flight while the next is parsed
TARGET_IN_PROCESS_1_ROW_MS = 3.0  # p50 of one record through the service's row path
TARGET_SINGLE_VS_NAIVE = 10.0
TARGET_SINGLE_P99_VS_NAIVE = 0.5
TARGET_BATCH_VS_IN_PROCESS = 0.50
TARGET_LOGGING_COST = 0.10  # the most prediction logging may take of /predict_one throughput
LOG_MODES = ("on", "off")
SHADOW_BATCH_SIZES = (1, 16, 64, 1_000)
READY_TIMEOUT_S = 180
PACKAGES = ("bentoml", "fastapi", "uvicorn", "scikit-learn", "pandas", "pydantic", "aiohttp")

log = logging.getLogger("bench")


# --- the naive server -----------------------------------------------------------------------


def naive_app(model_path: str, card_path: str, mode: str) -> Any:
    """FastAPI app: the same contract, one record per request, one model call per request.

    mode "sync": a plain `def` endpoint, which FastAPI runs in its thread pool (the usual way
    to write blocking code); "async": an `async def` endpoint, run on the event loop one
    request after the other (no thread switching, no batching either).
    """
    from fastapi import FastAPI

    from mlops_template.core.model import load_model
    from mlops_template.core.schema import TABLE
    from mlops_template.serving import contract

    model = load_model(model_path, card_path)
    version = model.version
    app = FastAPI()

    def predict(record: Any) -> Any:
        row = record.__dict__
        if mode == "rows":  # the service's path: validated fields, no frame
            proba = model.probability_of_rows([row])
        else:  # the pipeline's scoring API on a one-row frame
            proba = model.probability(contract.records_frame([record]))
        return contract.Prediction(
            **{TABLE.key: row[TABLE.key] if TABLE.id is not None else 0},
            probability=float(proba[0]),
            contact=bool(model.decide(proba)[0]),
            model_version=version,
        )

    # The contract's models, set here because FastAPI reads them from the annotations.
    annotations = {"record": contract.Record, "return": contract.Prediction}
    if mode == "async":

        async def predict_async(record: Any) -> Any:
            return predict(record)

        predict_async.__annotations__ = annotations
        app.post("/predict")(predict_async)
    else:
        predict.__annotations__ = annotations
        app.post("/predict")(predict)
    return app


def serve_naive(port: int, model_path: str, card_path: str, mode: str) -> None:
    import uvicorn

    uvicorn.run(
        naive_app(model_path, card_path, mode),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


# --- helpers --------------------------------------------------------------------------------


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


@contextmanager
def server(
    cmd: list[str], env: dict[str, str], workdir: Path, name: str, cwd: Path | None = None
) -> Iterator[str]:
    """Start a server process on a free loopback port (in `cwd`, default `workdir`); yield its
    URL; stop it. Its output goes to `workdir`/<name>.log."""
    port = free_port()
    full_cmd = [part.replace("{port}", str(port)) for part in cmd]
    log_path = workdir / f"{name}.log"
    with log_path.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            full_cmd,
            cwd=cwd or workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, log_path)
        yield url
    finally:
        stop_group(proc)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
        for path in ("/readyz", "/docs"):
            try:
                with urllib.request.urlopen(url + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT_S} s:\n{log_path.read_text()}")


# --- measurements ---------------------------------------------------------------------------


def in_process(
    model: Any, rows: list[dict[str, Any]], n: int, seconds: float, threads: int
) -> dict[str, Any]:
    """Throughput of model calls on `n` validated records at a time, in this process."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="openmp"):
        return timed(lambda: model.probability_of_rows(rows[:n]), n, seconds)


def timed(call: Any, rows: int, seconds: float) -> dict[str, Any]:
    """Call `call` back to back for `seconds` (at least 5 times): per-call percentiles."""
    call()  # warm up
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(latencies) < 5:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return {
        "rows_per_call": rows,
        "calls": len(latencies),
        "records_per_s": rows * len(latencies) / elapsed,
        **percentiles(latencies),
    }


def logbook_cost(rows: list[dict[str, Any]], model: Any, seconds: float) -> dict[str, Any]:
    """The request thread's hand-over of one model call's records to the log writer (per
    call, at 1 and 64 records), and the writer thread's own rate (lines/s, to local disk)."""
    import datetime as dt

    from mlops_template.core.params import load_params
    from mlops_template.serving.logbook import Logbook, PredictionBatch

    cfg = load_params(ROOT / "params.yaml").service
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-logbook-") as tmp:
        book = Logbook(
            Path(tmp), max_bytes=int(cfg.log_max_mb * 2**20), backups=cfg.log_backups,
            queue_max=10**6,
        )  # fmt: skip
        book.start()
        for n in (1, 64):
            chunk = rows[:n]
            proba = model.probability_of_rows(chunk)
            batch = PredictionBatch(
                "predict_one", dt.datetime.now(dt.UTC), model.version, "champion",
                ["0123456789abcdef"] * n, list(range(n)), chunk, proba, model.decide(proba),
            )  # fmt: skip
            hand_over = timed(lambda b=batch: book.predictions(b), n, seconds / 4)
            book.flush()
            started = time.perf_counter()
            for _ in range(max(1, 5_000 // n)):
                book.predictions(batch)
            book.flush()
            written = max(1, 5_000 // n) * n
            out[f"rows_{n}"] = {
                "hand_over_us_p50": hand_over["p50_ms"] * 1000,
                "hand_over_us_p99": hand_over["p99_ms"] * 1000,
                "writer_lines_per_s": written / (time.perf_counter() - started),
            }
        book.stop()
    return out


def shadow_cost(
    model: Any, challenger: Any, rows: list[dict[str, Any]], seconds: float, threads: int
) -> dict[str, Any]:
    """One model call alone vs the champion's and the challenger's on the same rows, as the
    service scores them (one after the other, in the same call)."""
    from threadpoolctl import threadpool_limits

    out: dict[str, Any] = {}
    with threadpool_limits(limits=threads, user_api="openmp"):
        for n in SHADOW_BATCH_SIZES:
            chunk = rows[:n]
            alone = timed(lambda c=chunk: model.probability_of_rows(c), n, seconds / 8)

            def both(c: list[dict[str, Any]] = chunk) -> None:
                model.probability_of_rows(c)
                challenger.probability_of_rows(c)

            paired = timed(both, n, seconds / 8)
            out[f"rows_{n}"] = {
                "champion_p50_ms": alone["p50_ms"],
                "with_challenger_p50_ms": paired["p50_ms"],
                "added_p50_ms": paired["p50_ms"] - alone["p50_ms"],
            }
    return out


def logged_lines(directory: Path) -> dict[str, int]:
    from mlops_template.core.events import PREDICTIONS_FILE, log_files

    found = log_files(directory, PREDICTIONS_FILE) if directory.is_dir() else []
    lines = sum(len(p.read_bytes().splitlines()) for p in found)
    return {"lines": lines, "bytes": sum(p.stat().st_size for p in found), "files": len(found)}


async def load(
    url: str,
    bodies: list[bytes],
    rows_per_request: int,
    concurrency: int,
    warmup_s: float,
    seconds: float,
) -> dict[str, Any]:
    """`concurrency` clients post bodies back to back; only requests that start after the
    warm-up and finish inside the measured window count."""
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    window = {"start": float("inf"), "stop": float("inf")}
    headers = {"content-type": "application/json"}

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        i = offset
        while time.perf_counter() < window["stop"]:
            body = bodies[i % len(bodies)]
            i += concurrency
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
            t1 = time.perf_counter()
            if window["start"] <= t0 and t1 <= window["stop"]:
                latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(client(session, k)) for k in range(concurrency)]
        await asyncio.sleep(warmup_s)
        window["start"] = time.perf_counter()
        window["stop"] = window["start"] + seconds
        await asyncio.gather(*tasks)
    ok = statuses.get(200, 0)
    return {
        "concurrency": concurrency,
        "rows_per_request": rows_per_request,
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "error_rate": 1.0 - ok / max(1, sum(statuses.values())),
        "records_per_s": ok * rows_per_request / seconds,
        **percentiles(latencies),
    }


def mean_batch_size(url: str) -> float:
    """Records per model call of /predict_one so far, from BentoML's Prometheus histogram."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        if line.startswith("bentoml_service_adaptive_batch_size_") and "predict_one" in line:
            kind = line.split("{", 1)[0].rsplit("_", 1)[-1]
            if kind in totals:
                totals[kind] += float(line.rsplit(" ", 1)[-1])
    return totals["sum"] / totals["count"] if totals["count"] else 0.0


def bento_model_files(model_tag: str) -> tuple[Path, Path]:
    """Model and card of the model the bento carries (from the BentoML model store)."""
    import bentoml

    from mlops_template.serving.service import CARD_FILE, MODEL_FILE

    stored = Path(bentoml.models.get(model_tag).path)
    return stored / MODEL_FILE, stored / CARD_FILE


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mlops_template.core.model import load_model
    from mlops_template.serving import contract

    bento = json.loads(args.bento_info.read_text(encoding="utf-8"))
    model_path, card_path = bento_model_files(bento["model_tag"])
    model = load_model(model_path, card_path)
    challenger = model  # a second call of the same cost, unless the bento carries one
    if bento.get("challenger_tag"):
        challenger = load_model(*bento_model_files(bento["challenger_tag"]))
    records = held_out_records(2 * BATCH_ROWS)
    rows = [contract.Record.model_validate(r).__dict__ for r in records]
    single_bodies = [json.dumps(r).encode() for r in records]
    batch_bodies = [
        json.dumps({"records": records[k : k + BATCH_ROWS]}).encode()
        for k in range(0, len(records) - BATCH_ROWS + 1, BATCH_ROWS // 2)
    ]
    results: dict[str, Any] = {"bento": bento["tag"], "load_before": loadavg()}

    log.info("in process: 1 row and %d rows per call", BATCH_ROWS)
    results["in_process_1"] = in_process(model, rows, 1, args.duration / 2, args.threads)
    results["in_process_1000"] = in_process(
        model, rows, BATCH_ROWS, args.duration / 2, args.threads
    )
    log.info("in process: the log hand-over and writer, a shadow challenger's extra call")
    results["logbook"] = logbook_cost(rows, model, args.duration)
    results["shadow"] = shadow_cost(model, challenger, rows, args.duration, args.threads)
    results["shadow_challenger"] = bento.get("challenger_tag") or "none (the champion twice)"

    threads = str(args.threads)
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "True",
        "OMP_NUM_THREADS": threads,  # the naive server's model calls
        MODEL_THREADS_ENV: threads,  # the service's model calls
    }
    warm = args.warmup
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        naive_cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--naive-server",
            "--port",
            "{port}",
            "--model",
            str(model_path),
            "--card",
            str(card_path),
        ]
        for mode in (*NAIVE_MODES, *NAIVE_REFERENCE_MODES):
            log.info(
                "naive FastAPI server (%s endpoint): %d clients, 1 record/request",
                mode,
                CONCURRENCY,
            )
            # In the repository: this script imports the service, which reads params.yaml.
            naive = [*naive_cmd, "--naive-mode", mode]
            with server(naive, env, workdir, f"naive-{mode}", cwd=ROOT) as url:
                results[f"naive_single_{mode}"] = asyncio.run(
                    load(f"{url}/predict", single_bodies, 1, CONCURRENCY, warm, args.duration)
                )
        # The baseline is the better of the two naive servers.
        results["naive_single"] = max(
            (results[f"naive_single_{mode}"] for mode in NAIVE_MODES),
            key=lambda m: float(m["records_per_s"]),
        )
        bento_cmd = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            bento["tag"],
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ]
        for mode in LOG_MODES:
            logs = workdir / f"logs-{mode}"
            mode_env = {
                **env,
                LOG_DIR_ENV: str(logs),
                LOG_PREDICTIONS_ENV: "true" if mode == "on" else "false",
            }
            suffix = "" if mode == "on" else "_nolog"
            log.info("bentoml service %s, prediction logs %s", bento["tag"], mode)
            with server(bento_cmd, mode_env, workdir, f"bentoml-log-{mode}") as url:
                single = asyncio.run(
                    load(f"{url}/predict_one", single_bodies, 1, CONCURRENCY, warm, args.duration)
                )
                single["mean_batch_size"] = mean_batch_size(url)
                results[f"service_single{suffix}"] = single
                results[f"service_batch{suffix}"] = asyncio.run(
                    load(
                        f"{url}/predict",
                        batch_bodies,
                        BATCH_ROWS,
                        BATCH_CONCURRENCY,
                        warm,
                        args.duration,
                    )
                )
            results[f"logged{suffix}"] = logged_lines(logs)
    results["load_after"] = loadavg()
    return results


def summarize(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    naive, single = results["naive_single"], results["service_single"]
    batch, inproc = results["service_batch"], results["in_process_1000"]
    ratios = {
        "single_vs_naive_throughput": single["records_per_s"] / naive["records_per_s"],
        "single_vs_naive_p50": single["p50_ms"] / naive["p50_ms"],
        "single_vs_naive_p99": single["p99_ms"] / naive["p99_ms"],
        "batch_vs_in_process_1000_throughput": batch["records_per_s"] / inproc["records_per_s"],
        "in_process_1000_vs_1_throughput": (
            inproc["records_per_s"] / results["in_process_1"]["records_per_s"]
        ),
        # Share of throughput the prediction logs take (negative: within the noise, faster).
        "logging_cost_single_throughput": (
            1.0 - single["records_per_s"] / results["service_single_nolog"]["records_per_s"]
        ),
        "logging_cost_batch_throughput": (
            1.0 - batch["records_per_s"] / results["service_batch_nolog"]["records_per_s"]
        ),
        "logging_single_p50": single["p50_ms"] / results["service_single_nolog"]["p50_ms"],
        "logging_single_p99": single["p99_ms"] / results["service_single_nolog"]["p99_ms"],
    }
    targets = {
        "in_process_1_row_at_most_3ms": (
            results["in_process_1"]["p50_ms"] <= TARGET_IN_PROCESS_1_ROW_MS
        ),
        "single_throughput_at_least_10x_naive": (
            ratios["single_vs_naive_throughput"] >= TARGET_SINGLE_VS_NAIVE
        ),
        "single_p99_at_most_half_naive": (
            ratios["single_vs_naive_p99"] <= TARGET_SINGLE_P99_VS_NAIVE
        ),
        "batch_at_least_50pct_of_in_process": (
            ratios["batch_vs_in_process_1000_throughput"] >= TARGET_BATCH_VS_IN_PROCESS
        ),
        "logging_costs_at_most_10pct_of_single_throughput": (
            ratios["logging_cost_single_throughput"] <= TARGET_LOGGING_COST
        ),
        "no_errors": all(
            results[k]["error_rate"] == 0.0
            for k in (
                *(f"naive_single_{m}" for m in NAIVE_MODES),
                "service_single",
                "service_batch",
                "service_single_nolog",
                "service_batch_nolog",
            )
        ),
    }
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": args.note,
        },
        "packages": {p: metadata.version(p) for p in PACKAGES},
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": CONCURRENCY,
            "batch_rows": BATCH_ROWS,
            "batch_concurrency": BATCH_CONCURRENCY,
            "openmp_threads_per_model_call": args.threads,
            "single_max_batch_size": SINGLE_MAX_BATCH_SIZE,
            "single_max_latency_ms": SINGLE_MAX_LATENCY_MS,
        },
        "results": results,
        "ratios": ratios,
        "targets": targets,
    }


def markdown(summary: dict[str, Any]) -> str:
    r, q = summary["results"], summary["ratios"]

    def row(label: str, m: dict[str, Any]) -> str:
        return (
            f"| {label} | {m['records_per_s']:,.0f} | {m['p50_ms']:.1f} | "
            f"{m['p99_ms']:.1f} | {m.get('error_rate', 0.0):.2%} |"
        )

    ok = {True: "met", False: "MISSED"}
    t = summary["targets"]
    lines = [
        "# Serving benchmark",
        "",
        f"{summary['date']}, {summary['machine']['cpus']} CPUs, load average "
        f"{r['load_before']} before / {r['load_after']} after. {summary['machine']['note']}",
        "",
        "| Measurement | records/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
        row("in process, 1 row per call", r["in_process_1"]),
        row(f"in process, {BATCH_ROWS:,} rows per call", r["in_process_1000"]),
        *(
            row(
                f"naive FastAPI `{mode}` endpoint, 1 record/request, {CONCURRENCY} clients",
                r[f"naive_single_{mode}"],
            )
            for mode in NAIVE_MODES
        ),
        row(
            f"service /predict_one, {CONCURRENCY} clients (mean batch "
            f"{r['service_single']['mean_batch_size']:.1f} records)",
            r["service_single"],
        ),
        row(
            f"service /predict, {BATCH_ROWS:,} records/request, {BATCH_CONCURRENCY} clients",
            r["service_batch"],
        ),
        row(
            f"service /predict_one, prediction logs off (mean batch "
            f"{r['service_single_nolog']['mean_batch_size']:.1f} records)",
            r["service_single_nolog"],
        ),
        row(
            f"service /predict, {BATCH_ROWS:,} records/request, prediction logs off",
            r["service_batch_nolog"],
        ),
        "",
        f"Prediction logs of the logged runs: {r['logged']['lines']:,} lines, "
        f"{r['logged']['bytes'] / 2**20:.1f} MiB in {r['logged']['files']} file(s) "
        f"(the unlogged runs wrote {r['logged_nolog']['lines']:,}).",
        "",
        "Ratios against the faster naive server:",
        "",
        "| Ratio | value | target |",
        "|---|---:|---|",
        f"| /predict_one vs naive, throughput | {q['single_vs_naive_throughput']:.2f}x | "
        f">= {TARGET_SINGLE_VS_NAIVE:.0f}x: {ok[t['single_throughput_at_least_10x_naive']]} |",
        f"| /predict_one vs naive, p50 latency | {q['single_vs_naive_p50']:.2f} | |",
        f"| /predict_one vs naive, p99 latency | {q['single_vs_naive_p99']:.2f} | "
        f"<= {TARGET_SINGLE_P99_VS_NAIVE}: {ok[t['single_p99_at_most_half_naive']]} |",
        f"| /predict vs in process ({BATCH_ROWS:,} rows), throughput | "
        f"{q['batch_vs_in_process_1000_throughput']:.0%} | "
        f">= {TARGET_BATCH_VS_IN_PROCESS:.0%}: {ok[t['batch_at_least_50pct_of_in_process']]} |",
        f"| in process, 1 record (p50) | {r['in_process_1']['p50_ms']:.2f} ms | "
        f"<= {TARGET_IN_PROCESS_1_ROW_MS:.0f} ms: {ok[t['in_process_1_row_at_most_3ms']]} |",
        f"| prediction logs: share of /predict_one throughput | "
        f"{q['logging_cost_single_throughput']:.1%} | <= {TARGET_LOGGING_COST:.0%}: "
        f"{ok[t['logging_costs_at_most_10pct_of_single_throughput']]} |",
        f"| prediction logs: /predict_one p50 / p99, on vs off | "
        f"{q['logging_single_p50']:.2f} / {q['logging_single_p99']:.2f} | |",
        f"| prediction logs: share of /predict throughput | "
        f"{q['logging_cost_batch_throughput']:.1%} | |",
        "",
        "In process: the request thread's hand-over to the log writer (per model call) and the "
        "writer's rate:",
        "",
        "| records per call | hand-over p50 / p99 | writer lines/s |",
        "|---:|---:|---:|",
        *(
            f"| {n} | {r['logbook'][f'rows_{n}']['hand_over_us_p50']:.1f} / "
            f"{r['logbook'][f'rows_{n}']['hand_over_us_p99']:.1f} us | "
            f"{r['logbook'][f'rows_{n}']['writer_lines_per_s']:,.0f} |"
            for n in (1, 64)
        ),
        "",
        f"In process: a shadow challenger's extra model call ({r['shadow_challenger']}):",
        "",
        "| records per call | champion alone p50 | with the challenger p50 | added |",
        "|---:|---:|---:|---:|",
        *(
            f"| {n:,} | {r['shadow'][f'rows_{n}']['champion_p50_ms']:.2f} ms | "
            f"{r['shadow'][f'rows_{n}']['with_challenger_p50_ms']:.2f} ms | "
            f"{r['shadow'][f'rows_{n}']['added_p50_ms']:.2f} ms |"
            for n in SHADOW_BATCH_SIZES
        ),
        "",
        "Command: `make bench-serving` (`uv run python benchmarks/serving.py "
        f"--duration {summary['settings']['duration_s']:g}`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads per model call")
    p.add_argument("--note", default="", help="free text stored with the results")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--naive-server", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bento-info", type=Path, default=BENTO_INFO, help="written by make bento")
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument(
        "--naive-mode",
        choices=(*NAIVE_MODES, *NAIVE_REFERENCE_MODES),
        default="sync",
        help=argparse.SUPPRESS,
    )
    p.add_argument("--card", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.naive_server:
        serve_naive(args.port, args.model, args.card, args.naive_mode)
        return 0
    # Where `make bento` put the model and the bento, unless the caller says otherwise.
    os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    summary = summarize(run(args), args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    (args.out / "serving.md").write_text(markdown(summary), "utf-8")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
