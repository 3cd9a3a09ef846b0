"""Benchmark serving: what adaptive batching buys over one-model-call-per-request.

Measured in one run, all on loopback, each phase bounded in time:
1. in process: `predict_proba` of the trained model on 1-row and 1,000-row frames (the
   physical limit: no HTTP, no JSON);
2. a naive FastAPI + uvicorn server with the same model and the same request contract, one
   record per request, one model call per request, under CONCURRENCY concurrent clients, in
   two variants (a `def` endpoint in FastAPI's thread pool, an `async def` endpoint on the
   event loop); the faster one is the baseline;
3. this BentoML service (the bento `make bento` built): `/predict_one` under the same
   CONCURRENCY concurrent clients (adaptive batching merges their records into one model
   call), and `/predict` with 1,000-record requests.

Reported: throughput (records/s) and p50/p99 latency, and the ratios the issue sets targets
for: single-record throughput >= 4x the naive server with a p99 no worse, and the batch
endpoint >= 25% of the in-process 1,000-row throughput.

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
import signal
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
import pandas as pd

from mlops_template.serving.build.smoke import free_port
from mlops_template.serving.service import (
    MODEL_THREADS_ENV,
    SINGLE_MAX_BATCH_SIZE,
    SINGLE_MAX_LATENCY_MS,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENTO_INFO = ROOT / "build" / "bento.json"
CONCURRENCY = 32
NAIVE_MODES = ("sync", "async")
BATCH_ROWS = 1_000
BATCH_CONCURRENCY = 2  # one request in flight while the next is parsed
TARGET_SINGLE_VS_NAIVE = 4.0
TARGET_BATCH_VS_IN_PROCESS = 0.25
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
        frame = contract.records_frame([record])
        proba = model.probability(frame)
        return contract.Prediction(
            **{TABLE.key: TABLE.keys(frame)[0]},
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
def server(cmd: list[str], env: dict[str, str], workdir: Path, name: str) -> Iterator[str]:
    """Start a server process on a free loopback port; yield its URL; stop it."""
    port = free_port()
    full_cmd = [part.replace("{port}", str(port)) for part in cmd]
    log_path = workdir / f"{name}.log"
    with log_path.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            full_cmd,
            cwd=workdir,
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
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


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
    model: Any, frame: pd.DataFrame, rows: int, seconds: float, threads: int
) -> dict[str, Any]:
    """Throughput of model calls on `rows`-row frames, in this process."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="openmp"):
        return _in_process(model, frame.head(rows), seconds)


def _in_process(model: Any, batch: pd.DataFrame, seconds: float) -> dict[str, Any]:
    rows = len(batch)
    model.probability(batch)  # warm up
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(latencies) < 5:
        t0 = time.perf_counter()
        model.probability(batch)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    return {
        "rows_per_call": rows,
        "calls": len(latencies),
        "records_per_s": rows * len(latencies) / elapsed,
        **percentiles(latencies),
    }


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


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bento_model_files(model_tag: str) -> tuple[Path, Path]:
    """Model and card of the model the bento carries (from the BentoML model store)."""
    import bentoml

    from mlops_template.serving.service import CARD_FILE, MODEL_FILE

    stored = Path(bentoml.models.get(model_tag).path)
    return stored / MODEL_FILE, stored / CARD_FILE


def sample_records(n: int) -> list[dict[str, Any]]:
    """Requests from the held-out test set (repeated when it has fewer than `n` rows)."""
    from mlops_template.core import io as files
    from mlops_template.core.params import load_params
    from mlops_template.core.schema import TABLE

    test = files.read_table(ROOT / load_params(ROOT / "params.yaml").paths.test)
    frame = test.loc[:, [c.name for c in TABLE.input_columns]]
    frame = pd.concat([frame] * (n // len(frame) + 1)).head(n)
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mlops_template.core.model import load_model
    from mlops_template.serving import contract

    bento = json.loads(args.bento_info.read_text(encoding="utf-8"))
    model_path, card_path = bento_model_files(bento["model_tag"])
    model = load_model(model_path, card_path)
    records = sample_records(2 * BATCH_ROWS)
    features = contract.records_frame([contract.Record.model_validate(r) for r in records])
    single_bodies = [json.dumps(r).encode() for r in records]
    batch_bodies = [
        json.dumps({"records": records[k : k + BATCH_ROWS]}).encode()
        for k in range(0, len(records) - BATCH_ROWS + 1, BATCH_ROWS // 2)
    ]
    results: dict[str, Any] = {"bento": bento["tag"], "load_before": loadavg()}

    log.info("in process: 1 row and %d rows per call", BATCH_ROWS)
    results["in_process_1"] = in_process(model, features, 1, args.duration / 2, args.threads)
    results["in_process_1000"] = in_process(
        model, features, BATCH_ROWS, args.duration / 2, args.threads
    )

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
        for mode in NAIVE_MODES:
            log.info(
                "naive FastAPI server (%s endpoint): %d clients, 1 record/request",
                mode,
                CONCURRENCY,
            )
            with server([*naive_cmd, "--naive-mode", mode], env, workdir, f"naive-{mode}") as url:
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
        log.info("bentoml service %s", bento["tag"])
        with server(bento_cmd, env, workdir, "bentoml") as url:
            results["service_single"] = asyncio.run(
                load(f"{url}/predict_one", single_bodies, 1, CONCURRENCY, warm, args.duration)
            )
            results["service_single"]["mean_batch_size"] = mean_batch_size(url)
            results["service_batch"] = asyncio.run(
                load(
                    f"{url}/predict",
                    batch_bodies,
                    BATCH_ROWS,
                    BATCH_CONCURRENCY,
                    warm,
                    args.duration,
                )
            )
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
    }
    targets = {
        "single_throughput_at_least_4x_naive": (
            ratios["single_vs_naive_throughput"] >= TARGET_SINGLE_VS_NAIVE
        ),
        "single_p99_no_worse_than_naive": ratios["single_vs_naive_p99"] <= 1.0,
        "batch_at_least_25pct_of_in_process": (
            ratios["batch_vs_in_process_1000_throughput"] >= TARGET_BATCH_VS_IN_PROCESS
        ),
        "no_errors": all(
            results[k]["error_rate"] == 0.0
            for k in (
                *(f"naive_single_{m}" for m in NAIVE_MODES),
                "service_single",
                "service_batch",
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
        "",
        "Ratios against the faster naive server:",
        "",
        "| Ratio | value | target |",
        "|---|---:|---|",
        f"| /predict_one vs naive, throughput | {q['single_vs_naive_throughput']:.2f}x | "
        f">= {TARGET_SINGLE_VS_NAIVE:.0f}x: {ok[t['single_throughput_at_least_4x_naive']]} |",
        f"| /predict_one vs naive, p50 latency | {q['single_vs_naive_p50']:.2f} | |",
        f"| /predict_one vs naive, p99 latency | {q['single_vs_naive_p99']:.2f} | "
        f"<= 1: {ok[t['single_p99_no_worse_than_naive']]} |",
        f"| /predict vs in process ({BATCH_ROWS:,} rows), throughput | "
        f"{q['batch_vs_in_process_1000_throughput']:.0%} | "
        f">= {TARGET_BATCH_VS_IN_PROCESS:.0%}: {ok[t['batch_at_least_25pct_of_in_process']]} |",
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
    p.add_argument("--naive-mode", choices=NAIVE_MODES, default="sync", help=argparse.SUPPRESS)
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
