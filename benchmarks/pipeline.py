"""Benchmark the real pipeline: wall time and peak memory of every stage at several sizes.

For each size, the tracked files of the repository are copied to a scratch directory,
`data.sample.n_rows` is set in the copy's params.yaml, and the stage commands of dvc.yaml are
run in dvc.yaml's order, each as its own process (exactly the command DVC would run, with the
`${...}` templates filled from params.yaml). Each process is reaped with `os.wait4`, whose
rusage gives that stage's own peak resident set size (ru_maxrss) and CPU time.

    uv run python benchmarks/pipeline.py                  # 100k and 1M rows (make bench-pipeline)
    uv run python benchmarks/pipeline.py --rows 20000     # a quick smoke run
    uv run python benchmarks/pipeline.py --threads 1      # one OpenMP/BLAS thread per stage

Results: benchmarks/results/pipeline.json and pipeline.md. The stages run one after the other,
so the end-to-end peak RSS is the largest stage peak. Timings depend on how busy the machine
is: the load average before and after each size is recorded with the figures, and CPU time
(user + system) next to wall time. On a shared machine, `--threads 1` makes the figures far less
sensitive to neighbours: scikit-learn's OpenMP threads wait for each other when one of them is
descheduled, which inflates both wall and CPU time of the training stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shlex
import shutil
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
DEFAULT_ROWS = (100_000, 1_000_000)
# The targets: 1M rows end to end under 4 GB peak RSS; time close to linear.
MAX_PEAK_RSS_BYTES = 4 * 1024**3
MAX_TIME_RATIO = 11.0
PACKAGES = ("numpy", "pandas", "pyarrow", "pandera", "scikit-learn", "dvc")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_TEMPLATE = re.compile(r"\$\{([^}]+)\}")

log = logging.getLogger("bench")


def _lookup(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.strip().split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"dvc.yaml template ${{{dotted}}} is not a key of params.yaml")
        value = value[part]
    return value


def stage_commands(dvc_yaml: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, str]]:
    """(stage, command) in dvc.yaml order, with `${...}` filled in from params."""
    commands = []
    for name, stage in dvc_yaml["stages"].items():
        cmd = " ".join(str(stage["cmd"]).split())
        commands.append((name, _TEMPLATE.sub(lambda m: str(_lookup(params, m.group(1))), cmd)))
    return commands


def copy_repository(dest: Path) -> None:
    """Copy the work tree as git sees it (tracked and new files; not DVC outputs, not .git)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_stage(argv: list[str], cwd: Path, env: dict[str, str], log_file: Path) -> dict[str, Any]:
    """Run one stage to completion; its wall time, CPU time and peak RSS (from wait4)."""
    with log_file.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}:\n{tail}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def bench_size(n_rows: int, scratch: Path, threads: int | None) -> dict[str, Any]:
    """Run every stage on `n_rows` sample rows in a fresh copy of the repository."""
    work = scratch / f"rows-{n_rows}"
    work.mkdir(parents=True, exist_ok=True)
    copy_repository(work)
    params = yaml.safe_load((work / "params.yaml").read_text(encoding="utf-8"))
    if params["data"]["source"] != "sample":
        raise SystemExit("params.yaml data.source is not 'sample': the benchmark needs the sample")
    params["data"]["sample"]["n_rows"] = n_rows
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    dvc_yaml = yaml.safe_load((work / "dvc.yaml").read_text(encoding="utf-8"))

    env = dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(work / "src"))
    if threads:
        env |= {name: str(threads) for name in THREAD_VARIABLES}
    load_before = os.getloadavg()
    stages: dict[str, dict[str, Any]] = {}
    for name, cmd in stage_commands(dvc_yaml, params):
        argv = shlex.split(cmd)
        if argv[0] == "python":
            argv[0] = sys.executable
        log.info("%s rows: %s ...", f"{n_rows:,}", name)
        stages[name] = run_stage(argv, work, env, work / f"{name}.log")
        log.info("%s rows: %s done %s", f"{n_rows:,}", name, stages[name])
    raw = work / params["paths"]["raw"]
    return {
        "n_rows": n_rows,
        "stages": stages,
        "total_wall_s": round(sum(s["wall_s"] for s in stages.values()), 2),
        "total_cpu_s": round(sum(s["cpu_s"] for s in stages.values()), 2),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
        "raw_file_mb": round(raw.stat().st_size / 1024**2, 1),
        "load_avg_1min": {
            "before": round(load_before[0], 2),
            "after": round(os.getloadavg()[0], 2),
        },
    }


def targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Check the largest run's peak RSS and the largest/smallest time ratio."""
    small, large = min(runs, key=lambda r: r["n_rows"]), max(runs, key=lambda r: r["n_rows"])
    result: dict[str, Any] = {
        "max_peak_rss_mb": MAX_PEAK_RSS_BYTES / 1024**2,
        "largest_peak_rss_mb": large["peak_rss_mb"],
        "peak_rss_ok": large["peak_rss_mb"] * 1024**2 < MAX_PEAK_RSS_BYTES,
    }
    if large is not small:
        ratio = large["total_wall_s"] / small["total_wall_s"]
        cpu_ratio = large["total_cpu_s"] / small["total_cpu_s"]
        per_stage = {
            name: round(large["stages"][name]["wall_s"] / max(s["wall_s"], 0.01), 2)
            for name, s in small["stages"].items()
        }
        result |= {
            "rows_ratio": large["n_rows"] / small["n_rows"],
            "time_ratio": round(ratio, 2),
            "cpu_time_ratio": round(cpu_ratio, 2),
            "time_ratio_per_stage": per_stage,
            "max_time_ratio": MAX_TIME_RATIO,
            "time_ratio_ok": ratio <= MAX_TIME_RATIO,
        }
    return result


def markdown(report: dict[str, Any]) -> str:
    runs = report["runs"]
    stage_names = list(runs[0]["stages"])
    header = "| stage | " + " | ".join(f"{r['n_rows']:,} rows: wall / CPU / peak RSS" for r in runs)
    lines = [header + " |", "|---" * (len(runs) + 1) + "|"]
    for name in [*stage_names, "total"]:
        cells = []
        for r in runs:
            s = (
                r["stages"][name]
                if name != "total"
                else {
                    "wall_s": r["total_wall_s"],
                    "cpu_s": r["total_cpu_s"],
                    "peak_rss_mb": r["peak_rss_mb"],
                }
            )
            cells.append(f"{s['wall_s']:.1f} s / {s['cpu_s']:.1f} s / {s['peak_rss_mb']:,.0f} MB")
        label = "**end to end**" if name == "total" else f"`{name}`"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    t = report["targets"]
    lines.append("")
    lines.append(
        f"Peak RSS at {runs[-1]['n_rows']:,} rows: {t['largest_peak_rss_mb']:,.0f} MB "
        f"(target < {t['max_peak_rss_mb']:,.0f} MB: {'met' if t['peak_rss_ok'] else 'MISSED'})."
    )
    if "time_ratio" in t:
        lines.append(
            f"Wall-time ratio for {t['rows_ratio']:.0f}x rows: {t['time_ratio']:.2f}x "
            f"(target <= {t['max_time_ratio']:.0f}x: {'met' if t['time_ratio_ok'] else 'MISSED'}); "
            f"CPU-time ratio {t['cpu_time_ratio']:.2f}x."
        )
    m = report["machine"]
    loads = ", ".join(
        f"{r['n_rows']:,} rows {r['load_avg_1min']['before']}-{r['load_avg_1min']['after']}"
        for r in runs
    )
    lines.append(
        f"Threads per stage: {report['threads'] or 'library default (all CPUs)'}; "
        f"1-minute load average during the runs: {loads}."
    )
    lines.append(
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}; "
        f"measured {report['measured_at']} at commit {report['commit'][:12]}."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    p.add_argument("--out", type=Path, default=RESULTS / "pipeline.json")
    p.add_argument("--scratch", type=Path, default=None, help="keep the work copies here")
    p.add_argument(
        "--threads", type=int, default=None, help="OpenMP/BLAS threads per stage (default: all)"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        scratch = args.scratch or Path(tmp)
        try:
            runs = [bench_size(n, scratch, args.threads) for n in sorted(args.rows)]
        except RuntimeError as exc:
            log.error("%s", exc)
            return 1
    report: dict[str, Any] = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": machine(PACKAGES),
        "threads": args.threads,
        "note": "shared machine: compare load_avg_1min with the CPU count before trusting times",
        "runs": runs,
        "targets": targets(runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table, encoding="utf-8")
    sys.stdout.write(table)
    t = report["targets"]
    return 0 if t["peak_rss_ok"] and t.get("time_ratio_ok", True) else 2


if __name__ == "__main__":
    raise SystemExit(main())
