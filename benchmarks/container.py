"""Benchmark the serving image against `bentoml containerize` for the same bento and base.

    make bench-container [IMAGE=...] BASE_IMAGE=...   # builds IMAGE first

1. IMAGE is the image `make container` built from this repository's Dockerfile.
2. The same bento (the archive `make bento` exported, model included) is imported into a scratch
   BENTOML_HOME, its `image.base_image` is set to the same base as IMAGE's (when BASE_IMAGE is
   given; that field is where `bentoml containerize` takes its FROM line), and
   `bentoml containerize` builds it with the classic builder (DOCKER_BUILDKIT=0: there may be
   no buildx). Nothing else in the bento changes.
3. Both images' sizes (`docker image inspect .Size`, uncompressed) and, for each image, the
   seconds from `docker run` to the first 200 from `/readyz`, over --runs runs that alternate
   between the two images (median kept).

Results: benchmarks/results/container.json. tests/test_container.py reads the containerize size
from it: the image must stay at most BUDGET_RATIO of it. Start-up times depend on how busy the
machine is: the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mlops_template.core.cli import configure_logging
from mlops_template.serving.build.container import BENTO_INFO, read_bento_info
from mlops_template.serving.build.smoke import docker, free_port, running, wait_ready

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "container.json"
BUDGET_RATIO = 0.40  # the target: at most 40% of `bentoml containerize`
DEFAULT_BASE = "python:3.11-slim"  # what containerize uses when the bento names no base

log = logging.getLogger("bench")


def image_size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


def containerize(bento_tag: str, archive: Path, base_image: str | None, tag: str) -> None:
    """`bentoml containerize` the bento on `base_image` as `tag`."""
    with tempfile.TemporaryDirectory(prefix="bench-containerize-") as tmp:
        bentoml = [sys.executable, "-m", "bentoml"]
        env = {**os.environ, "BENTOML_HOME": str(Path(tmp) / "home"), "DOCKER_BUILDKIT": "0"}
        # An absolute path: bentoml resolves a relative one against "/".
        done = subprocess.run([*bentoml, "import", str(archive.resolve())], env=env,
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"bentoml import {archive} failed:\n{done.stderr[-3000:]}")
        name, version = bento_tag.split(":")
        bento_yaml = Path(tmp) / "home" / "bentos" / name / version / "bento.yaml"
        if base_image:
            info = yaml.safe_load(bento_yaml.read_text(encoding="utf-8"))
            info["image"]["base_image"] = base_image
            bento_yaml.write_text(yaml.safe_dump(info, sort_keys=False), encoding="utf-8")
        log.info("bentoml containerize %s on %s (several minutes)", bento_tag,
                 base_image or DEFAULT_BASE)  # fmt: skip
        done = subprocess.run([*bentoml, "containerize", bento_tag, "-t", tag], env=env,
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"bentoml containerize failed:\n{done.stdout[-3000:]}{done.stderr}")


def ready_time(image: str, timeout: float) -> float:
    """Seconds from `docker run` to the first 200 on /readyz."""
    port = free_port()
    with running(image, port) as (name, started):
        return round(wait_ready(f"http://127.0.0.1:{port}", name, started, timeout), 2)


def measure(images: list[str], runs: int, timeout: float) -> dict[str, dict[str, Any]]:
    """Size and start-up times of each image; runs alternate between the images, so a change
    in the machine's load during the benchmark hits them alike."""
    times: dict[str, list[float]] = {image: [] for image in images}
    for i in range(runs):
        for image in images:
            times[image].append(ready_time(image, timeout))
            log.info("%s run %d/%d: ready after %.2f s", image, i + 1, runs, times[image][-1])
    results = {}
    for image in images:
        size = image_size(image)
        results[image] = {
            "name": image,
            "size_bytes": size,
            "size_mb": round(size / 1e6, 1),
            "ready_seconds": {"runs": times[image], "median": statistics.median(times[image])},
        }
    return results


def main() -> int:
    configure_logging()
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--image", required=True, help="the image `make container` built")
    p.add_argument("--base-image", help="the base IMAGE was built on (default: the Dockerfile's)")
    p.add_argument("--runs", type=int, default=5, help="start-ups to time per image")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for ready")
    p.add_argument("--keep", action="store_true", help="keep the containerize image afterwards")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()

    os.chdir(ROOT)  # build/bento.json holds paths relative to the repository
    bento_tag, archive = read_bento_info(BENTO_INFO)
    cz_tag = f"bench-containerize:{bento_tag.split(':')[1]}"
    load_before = os.getloadavg()
    containerize(bento_tag, archive, args.base_image, cz_tag)
    try:
        measured = measure([args.image, cz_tag], args.runs, args.timeout)
        ours, theirs = measured[args.image], measured[cz_tag]
    finally:
        if not args.keep:
            docker("rmi", cz_tag, check=False)
    base = args.base_image or "the Dockerfile's default (python:3.11-slim@sha256:...)"
    ratio = ours["size_bytes"] / theirs["size_bytes"]
    result = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "make bench-container IMAGE=... BASE_IMAGE=...",
        "bento": bento_tag,
        "base_image": {
            "name": base,
            "size_bytes": image_size(args.base_image) if args.base_image else None,
        },
        "image": ours,
        "containerize": theirs,
        "size_ratio": round(ratio, 3),
        "budget_ratio": BUDGET_RATIO,
        "within_budget": ratio <= BUDGET_RATIO,
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info(
        "image %.0f MB vs containerize %.0f MB (ratio %.2f, budget %.2f); ready %.1f s vs %.1f s",
        ours["size_mb"], theirs["size_mb"], ratio, BUDGET_RATIO,
        ours["ready_seconds"]["median"], theirs["ready_seconds"]["median"],
    )  # fmt: skip
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
