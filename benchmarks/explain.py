"""Benchmark explanations: what `/explain` costs, next to `/predict`.

Measured in one run, on the model the bento carries (`make bento` first), one caller at a
time (latency, not throughput), each phase bounded in time:
1. in process: building the explainer once, then `explain_rows` with 1 and 100 records per
   call, and `probability_of_rows` (what /predict computes) on the same records;
2. a real `bentoml serve` of the bento on loopback: POST /explain and /predict with 1 and 100
   records per request.

Also recorded: the bento's runtime requirements hold none of shap, numba or llvmlite (the
explainer is numpy over scikit-learn's trees), so the image does not grow.

    make bench-explain                                  # builds the bento first
    BENTOML_HOME=$PWD/bentoml_home uv run python benchmarks/explain.py --duration 2   # quick

Results: benchmarks/results/explain.json and explain.md. Figures move with the machine's
load: the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import held_out_records, loadavg

from mlops_template.core.model import CARD_FILE, MODEL_FILE
from mlops_template.serving.build.smoke import free_port, stop_group
from mlops_template.serving.service import MODEL_THREADS_ENV

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENTO_INFO = ROOT / "build" / "bento.json"
SIZES = (1, 100)
READY_TIMEOUT_S = 180
HEAVY = ("shap", "numba", "llvmlite")  # what shap would bring into the image

log = logging.getLogger("bench-explain")


def timed(call: Callable[[], Any], seconds: float, warmup: int = 3) -> dict[str, Any]:
    """Call repeatedly for about `seconds`: p50 / p99 / mean latency in ms."""
    for _ in range(warmup):
        call()
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(latencies) < 5:
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    ms = np.asarray(latencies) * 1000
    return {
        "calls": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
    }


def bento_model(tag: str) -> Any:
    import bentoml

    from mlops_template.core.model import load_model

    stored = Path(bentoml.models.get(tag).path)
    return load_model(stored / MODEL_FILE, stored / CARD_FILE)


def in_process(model: Any, records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from mlops_template.core import explain
    from mlops_template.serving import contract

    rows = [contract.Record.model_validate(r).__dict__ for r in records]
    out: dict[str, Any] = {}
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        explainer = explain.build_explainer(model)
        out["build_explainer_s"] = round(time.perf_counter() - started, 3)
        out["method"] = explainer.method
        for n in SIZES:
            chunk = rows[:n]
            out[f"explain_{n}"] = timed(lambda c=chunk: explain.explain_rows(model, c, 5), seconds)
            out[f"predict_{n}"] = timed(lambda c=chunk: model.probability_of_rows(c), seconds)
    return out


@contextmanager
def served(tag: str, workdir: Path) -> Iterator[str]:
    """`bentoml serve` the bento on a free loopback port (one worker, one model thread)."""
    port = free_port()
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", MODEL_THREADS_ENV: "1"}
    env["MLOPS_LOG_DIR"] = str(workdir / "logs")  # the service's prediction logs, if any
    log_path = workdir / "serve.log"
    with log_path.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", tag, "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {READY_TIMEOUT_S} s")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)


def over_http(tag: str, records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    from mlops_template.core.params import load_params

    out: dict[str, Any] = {}
    headers = {"content-type": "application/json"}
    with (
        tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp,
        served(tag, Path(tmp)) as url,
        httpx.Client(base_url=url, timeout=60, headers=headers) as http,
    ):
        for n in SIZES:
            body = json.dumps({"records": records[:n]}).encode()
            for route in ("explain", "predict"):

                def post(route: str = route, body: bytes = body) -> None:
                    http.post(f"/{route}", content=body).raise_for_status()

                out[f"{route}_{n}"] = timed(post, seconds)
        example = json.loads((ROOT / load_params(ROOT / "params.yaml").paths.example).read_text())
        out["example_request"] = example
        out["example_answer"] = http.post("/explain", json=example).json()
    return out


def requirements_check(bento_tag: str) -> dict[str, Any]:
    """Which of HEAVY the bento's locked runtime requirements hold (none, expected)."""
    import bentoml

    bento = bentoml.get(bento_tag)
    path = Path(bento.path) / "env" / "python" / "requirements.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    names = {ln.split("==")[0].split(">=")[0].strip().lower() for ln in lines if ln.strip()}
    return {"requirements": str(path), "found": sorted(n for n in HEAVY if n in names)}


def markdown(results: dict[str, Any]) -> str:
    inproc, http = results["in_process"], results["http"]
    lines = [
        "# Explanation benchmark",
        "",
        f"{results['when']}, {results['cpus']} CPUs, load average {results['load_before']} "
        f"before / {results['load_after']} after. Bento {results['bento']}; method: "
        f"{inproc['method']}; explainer built once in {inproc['build_explainer_s']} s.",
        "",
        "| Measurement | records/call | p50 ms | p99 ms | ms per record (p50) |",
        "|---|---:|---:|---:|---:|",
    ]
    for where, data in (("in process", inproc), ("bentoml serve, HTTP", http)):
        for route in ("explain", "predict"):
            for n in SIZES:
                m = data[f"{route}_{n}"]
                name = f"{where}: {'explain_rows' if where == 'in process' else '/' + route}"
                if where == "in process" and route == "predict":
                    name = "in process: probability_of_rows"
                lines.append(
                    f"| {name} | {n} | {m['p50_ms']} | {m['p99_ms']} | {m['p50_ms'] / n:.2f} |"
                )
    heavy = results["requirements"]["found"]
    lines += [
        "",
        f"Runtime requirements of the bento hold {', '.join(heavy) if heavy else 'none'} of "
        f"{', '.join(HEAVY)}: the explainer adds no dependency, so the image does not grow.",
        "",
        "Command: `make bench-explain` "
        f"(`uv run python benchmarks/explain.py --duration {results['duration_s']}`).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--bento-info", type=Path, default=BENTO_INFO)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    bento = json.loads(args.bento_info.read_text(encoding="utf-8"))
    model = bento_model(bento["model_tag"])
    records = held_out_records(max(SIZES))
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "bento": bento["tag"],
        "duration_s": args.duration,
        "load_before": loadavg(),
    }
    log.info("in process: explainer build, explain_rows and probability_of_rows")
    results["in_process"] = in_process(model, records, args.duration)
    log.info("bentoml serve %s: /explain and /predict", bento["tag"])
    results["http"] = over_http(bento["tag"], records, args.duration)
    results["requirements"] = requirements_check(bento["tag"])
    results["load_after"] = loadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explain.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "explain.md").write_text(markdown(results), encoding="utf-8")
    sys.stdout.write(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
