"""Benchmark batch scoring: throughput and peak memory of `make score`, against the physical
limit on this machine, at two sizes, and the same scoring on Spark local[2].

Measured in one run, on a customer base from the sample generator (`make sample`, not timed):
1. the physical limit: in process, `LoadedModel.probability` (the schema's encoding +
   `predict_proba`) of the same model on 10,000-row batches of frames already in memory
   (the first LIMIT_ROWS rows of the base), and `predict_proba` alone on the encoded batches;
2. `python -m mlops_template.scoring` (exactly what `make score` runs) on 350k and 3.5M rows,
   each as its own process reaped with `os.wait4`: wall time, CPU time and its peak RSS;
3. the same command with `--engine spark --master local[2]` on the 3.5M rows (its driver's
   peak RSS; Spark's JVM and Python workers are other processes).

Targets (issue 11): at 3.5M rows, throughput >= 70 % of the physical limit, peak RSS <= 1.5 GB,
and the 3.5M-row peak <= 1.2x the 350k-row peak (flat in input size).

    make bench-scoring                                  # 350k and 3.5M rows, Spark included
    uv run python benchmarks/scoring.py --rows 50000 200000 --no-spark     # a quick run

Every model call uses --threads OpenMP threads (default 1, as in the serving benchmark: on a
small or busy host, scikit-learn's OpenMP threads waiting for each other make calls several
times slower); Spark runs one task per core, each with one thread. Figures move with the
machine's load: the load average before and after each measurement is recorded.

Results: benchmarks/results/scoring.json and scoring.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_ROWS = (350_000, 3_500_000)
BATCH_ROWS = 10_000
LIMIT_ROWS = 500_000
TARGET_THROUGHPUT_SHARE = 0.70
TARGET_PEAK_RSS_MB = 1.5 * 1024
TARGET_RSS_RATIO = 1.2
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PACKAGES = ("numpy", "pandas", "pyarrow", "pandera", "scikit-learn", "pyspark", "tqdm")

log = logging.getLogger("bench")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run(argv: list[str], env: dict[str, str], log_file: Path) -> dict[str, Any]:
    """Run one command to completion; its wall time, CPU time and peak RSS (from wait4)."""
    before = load()
    with log_file.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{tail}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "load_avg_1min": {"before": before, "after": load()},
    }


def physical_limit(base: Path, model: tuple[Path, Path], threads: int) -> dict[str, Any]:
    """Records/s of the model alone on 10,000-row batches of frames already in memory (run in
    a child process: this one stays small, as the parent of every measured process must, for
    a forked child starts with its parent's peak RSS)."""
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    from mlops_template.core.model import load_model
    from mlops_template.core.schema import TABLE

    loaded = load_model(*model)
    names = [c.name for c in TABLE.input_columns]
    frame = pq.ParquetFile(base).read_row_groups([0], columns=names).to_pandas()
    frame = frame.head(LIMIT_ROWS)
    batches = [frame.iloc[i : i + BATCH_ROWS] for i in range(0, len(frame), BATCH_ROWS)]
    encoded = [TABLE.encode(b) for b in batches]
    before = load()
    with threadpool_limits(limits=threads):
        loaded.probability(batches[0])  # warm up
        started = time.perf_counter()
        for batch in batches:
            loaded.probability(batch)
        probability_s = time.perf_counter() - started
        started = time.perf_counter()
        for x in encoded:
            loaded.estimator.predict_proba(x)
        predict_s = time.perf_counter() - started
    return {
        "rows": len(frame),
        "batch_rows": BATCH_ROWS,
        "probability_records_per_s": round(len(frame) / probability_s),
        "predict_proba_only_records_per_s": round(len(frame) / predict_s),
        "load_avg_1min": {"before": before, "after": load()},
    }


def make_base(rows: int, path: Path, env: dict[str, str]) -> None:
    if path.is_file():  # named by its row count; the generator is deterministic
        return
    log.info("writing a customer base of %s rows", f"{rows:,}")
    cmd = [sys.executable, "-m", "mlops_template.sample", "--rows", str(rows), "--out", str(path)]
    run(cmd, env, path.with_suffix(".log"))


def score(
    base: Path, out: Path, params: Path, env: dict[str, str], spark: bool = False
) -> dict[str, Any]:
    """`make score` on `base` (the repository's params, but --threads), as its own process."""
    cmd = [sys.executable, "-m", "mlops_template.scoring", "--params", str(params)]
    cmd += ["--input", str(base), "--output", str(out)]
    if spark:
        cmd += ["--engine", "spark", "--master", "local[2]"]
    result = run(cmd, env, out.with_name(out.name + ".log"))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = summary["records"]["read"]
    result |= {
        "rows": rows,
        "records_per_s": round(rows / result["wall_s"]),
        "scores_mb": round((out / "scores.parquet").stat().st_size / 1024**2, 1),
        "summary": summary,
    }
    return result


def targets(report: dict[str, Any]) -> dict[str, Any]:
    runs = report["in_process"]
    small, large = runs[0], runs[-1]
    limit = report["physical_limit"]["probability_records_per_s"]
    share = large["records_per_s"] / limit
    out: dict[str, Any] = {
        "throughput_share_of_limit": round(share, 3),
        "throughput_ok": share >= TARGET_THROUGHPUT_SHARE,
        "largest_peak_rss_mb": large["peak_rss_mb"],
        "peak_rss_ok": large["peak_rss_mb"] <= TARGET_PEAK_RSS_MB,
    }
    if large is not small:
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        out |= {"peak_rss_ratio": round(ratio, 3), "peak_rss_flat_ok": ratio <= TARGET_RSS_RATIO}
    if report.get("spark"):
        out["spark_vs_in_process_wall"] = round(report["spark"]["wall_s"] / large["wall_s"], 2)
    return out


def markdown(report: dict[str, Any]) -> str:
    lim, t = report["physical_limit"], report["targets"]
    lines = [
        "| measurement | records | wall | CPU | records/s | peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
        f"| physical limit: `probability` on {lim['batch_rows']:,}-row batches in memory "
        f"| {lim['rows']:,} | | | {lim['probability_records_per_s']:,} | |",
        f"| (`predict_proba` alone on the encoded batches) | {lim['rows']:,} | | "
        f"| {lim['predict_proba_only_records_per_s']:,} | |",
    ]
    for r in report["in_process"]:
        lines.append(
            f"| `make score`, in process | {r['rows']:,} | {r['wall_s']:.1f} s "
            f"| {r['cpu_s']:.1f} s | {r['records_per_s']:,} | {r['peak_rss_mb']:,.0f} MB |"
        )
    if report.get("spark"):
        s = report["spark"]
        lines.append(
            f"| `make score ENGINE=spark`, local[2] | {s['rows']:,} | {s['wall_s']:.1f} s "
            f"| {s['cpu_s']:.1f} s (driver) | {s['records_per_s']:,} "
            f"| {s['peak_rss_mb']:,.0f} MB (driver) |"
        )
    ok = {True: "met", False: "MISSED"}
    lines += [
        "",
        f"Throughput at {report['in_process'][-1]['rows']:,} rows: "
        f"{t['throughput_share_of_limit']:.0%} of the physical limit "
        f"(target >= {TARGET_THROUGHPUT_SHARE:.0%}: {ok[t['throughput_ok']]}); "
        f"peak RSS {t['largest_peak_rss_mb']:,.0f} MB (target <= {TARGET_PEAK_RSS_MB:,.0f} MB: "
        f"{ok[t['peak_rss_ok']]})"
        + (
            f"; {t['peak_rss_ratio']:.2f}x the peak at {report['in_process'][0]['rows']:,} rows "
            f"(target <= {TARGET_RSS_RATIO}x: {ok[t['peak_rss_flat_ok']]})."
            if "peak_rss_ratio" in t
            else "."
        ),
    ]
    if "spark_vs_in_process_wall" in t:
        lines.append(
            f"Spark local[2] takes {t['spark_vs_in_process_wall']:.2f}x the in-process wall time "
            "on the same rows (session start-up included)."
        )
    loads = [
        f"limit {lim['load_avg_1min']['before']}-{lim['load_avg_1min']['after']}",
        *(
            f"{r['rows']:,} rows {r['load_avg_1min']['before']}-{r['load_avg_1min']['after']}"
            for r in report["in_process"]
        ),
    ]
    if report.get("spark"):
        s = report["spark"]["load_avg_1min"]
        loads.append(f"Spark {s['before']}-{s['after']}")
    m = report["machine"]
    lines += [
        f"OpenMP threads per model call: {report['threads']}; 1-minute load average "
        f"(before-after): {', '.join(loads)}.",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}; "
        f"measured {report['measured_at']} at commit {report['commit'][:12]} "
        "(plus the work tree's changes).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads per model call")
    p.add_argument("--no-spark", action="store_true", help="skip the Spark measurement")
    p.add_argument("--scratch", type=Path, default=None, help="keep bases and outputs here")
    p.add_argument("--out", type=Path, default=RESULTS / "scoring.json")
    p.add_argument("--limit-of", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    model = (ROOT / params["paths"]["model"], ROOT / params["paths"]["model_card"])
    if args.limit_of:
        sys.stdout.write(json.dumps(physical_limit(args.limit_of, model, args.threads)))
        return 0
    if not model[0].is_file():
        log.error("%s is missing: run `make run` (or `make pull`) first", model[0])
        return 1
    env = dict(os.environ, PYTHONWARNINGS="ignore::FutureWarning", CI="1")
    env |= {name: str(args.threads) for name in THREAD_VARIABLES}
    os.environ.update({name: str(args.threads) for name in THREAD_VARIABLES})
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    sizes = sorted(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        scratch = args.scratch or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        params["score"]["threads"] = args.threads
        bench_params = scratch / "params.yaml"
        bench_params.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        try:
            bases = {n: scratch / f"base-{n}.parquet" for n in sizes}
            for n, path in bases.items():
                make_base(n, path, env)
            log.info("physical limit: probability on %s-row batches", f"{BATCH_ROWS:,}")
            limit = json.loads(
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--limit-of",
                        str(bases[sizes[-1]]),
                        "--threads",
                        str(args.threads),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            log.info("limit: %s", limit)
            runs = []
            for n in sizes:
                log.info("make score, in process: %s rows", f"{n:,}")
                runs.append(score(bases[n], scratch / f"scored-{n}", bench_params, env))
                log.info(
                    "%s rows: %s", f"{n:,}", {k: v for k, v in runs[-1].items() if k != "summary"}
                )
            spark = None
            if not args.no_spark:
                log.info("make score ENGINE=spark, local[2]: %s rows", f"{sizes[-1]:,}")
                spark = score(
                    bases[sizes[-1]],
                    scratch / f"scored-{sizes[-1]}-spark",
                    bench_params,
                    env,
                    spark=True,
                )
                log.info("Spark: %s", {k: v for k, v in spark.items() if k != "summary"})
        except RuntimeError as exc:
            log.error("%s", exc)
            return 1
    report: dict[str, Any] = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": machine(PACKAGES),
        "threads": args.threads,
        "note": "shared machine: compare load_avg_1min with the CPU count before trusting times",
        "physical_limit": limit,
        "in_process": runs,
        "spark": spark,
    }
    if spark:
        same = {k: v for k, v in spark["summary"].items() if k != "engine"} == {
            k: v for k, v in runs[-1]["summary"].items() if k != "engine"
        }
        report["spark_summary_equals_in_process"] = same
    report["targets"] = targets(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table, encoding="utf-8")
    sys.stdout.write(table)
    t = report["targets"]
    return 0 if t["throughput_ok"] and t["peak_rss_ok"] and t.get("peak_rss_flat_ok", True) else 2


if __name__ == "__main__":
    raise SystemExit(main())
