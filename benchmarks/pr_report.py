"""Benchmark the pull-request report: cold (empty DVC cache) against warm (cache restored).

This is what the `report` job of .github/workflows/pr.yml does after setting up Python: `dvc
repro`, then the report against the base. A scratch repository is built from the project's
tracked files; `main` is committed after `dvc repro`, and a branch changes only a file that
training does not depend on. Then, for that branch:

- cold: a fresh clone with no DVC cache (a CI runner without a cache hit) -> every stage runs;
- warm: a fresh clone whose `.dvc/cache` is a copy of the cold clone's (what `actions/cache`
  restores) -> `dvc repro` restores the outputs and re-trains nothing.

    uv run python benchmarks/pr_report.py              # the sample at its params.yaml size
    uv run python benchmarks/pr_report.py --rows 5000  # a quick smoke run

Results: benchmarks/results/pr_report.json. Target (issue 3): warm <= 20 % of cold.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_RATIO = 0.20

log = logging.getLogger("bench")


def _env(repo: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),  # the scratch copy's code
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }


def run(repo: Path, *args: str) -> float:
    """Run a command in `repo`; return its wall time in seconds (fail loudly on error)."""
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=repo, env=_env(repo), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {repo}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def build_origin(origin: Path, rows: int | None) -> None:
    """A repository with `main` (pipeline reproduced) and a branch that changes only docs."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, origin / name)
    if rows is not None:
        params = yaml.safe_load((origin / "params.yaml").read_text(encoding="utf-8"))
        params["data"]["sample"]["n_rows"] = rows
        (origin / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    py = sys.executable
    run(origin, "git", "init", "-q", "-b", "main")
    run(origin, py, "-m", "dvc", "remote", "modify", "local", "url", str(origin.parent / "none"))
    log.info("building main in %s (dvc repro, not timed)", origin)
    run(origin, py, "-m", "dvc", "repro", "--quiet")
    run(origin, "git", "add", "-A")
    run(origin, "git", "commit", "-q", "-m", "main")
    run(origin, "git", "checkout", "-q", "-b", "docs-change")
    (origin / "CHANGELOG.md").write_text("A change training does not depend on.\n", "utf-8")
    run(origin, "git", "add", "CHANGELOG.md")
    run(origin, "git", "commit", "-q", "-m", "docs only")


def measure(origin: Path, target: Path, cache_from: Path | None) -> dict[str, float]:
    """Clone the branch, optionally restore a DVC cache, then time repro + report."""
    run(origin, "git", "clone", "-q", "--branch", "docs-change", str(origin), str(target))
    run(target, "git", "branch", "main", "origin/main")
    if cache_from is not None:
        shutil.copytree(cache_from / ".dvc" / "cache", target / ".dvc" / "cache")
    py = sys.executable
    repro = run(target, py, "-m", "dvc", "repro", "--quiet")
    report = run(target, py, "-m", "mlops_template.review.report", "--base", "main")
    verdict = json.loads((target / "reports" / "pr_report.json").read_text("utf-8"))["status"]
    log.info("%s: repro %.1f s, report %.1f s (%s)", target.name, repro, report, verdict)
    return {
        "repro_s": round(repro, 2),
        "report_s": round(report, 2),
        "total_s": round(repro + report, 2),
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="override data.sample.n_rows")
    parser.add_argument("--out", type=Path, default=RESULTS / "pr_report.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pr-report-") as tmp:
        origin = Path(tmp) / "origin"
        origin.mkdir()
        build_origin(origin, args.rows)
        rows = yaml.safe_load((origin / "params.yaml").read_text("utf-8"))["data"]["sample"]
        load_before = os.getloadavg()
        cold = measure(origin, Path(tmp) / "cold", cache_from=None)
        warm = measure(origin, Path(tmp) / "warm", cache_from=Path(tmp) / "cold")
        load_after = os.getloadavg()
    ratio = warm["total_s"] / cold["total_s"]
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_before": load_before,
            "load_avg_after": load_after,
        },
        "n_rows": rows["n_rows"],
        "cold": cold,
        "warm": warm,
        "warm_over_cold": round(ratio, 3),
        "target_warm_over_cold": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info(
        "warm/cold = %.1f%% (target <= %.0f%%) -> %s", 100 * ratio, 100 * TARGET_RATIO, args.out
    )
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
