"""Benchmark the paired bootstrap of a model comparison (core/uncertainty.py).

What the experiments table and the PR report add to a comparison: for two real models (the
params.yaml model and the logistic-regression alternative, trained on the sample), the time
to score both on the test set and to bootstrap the four compared metrics, at several test-set
sizes, with params.yaml `uncertainty` (resamples, seed).

    uv run python benchmarks/uncertainty.py                 # 1k, 10k, 100k, 1M test rows
    uv run python benchmarks/uncertainty.py --rows 1000 10000  # a quick run

Results: benchmarks/results/uncertainty.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import platform
import time
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from mlops_template.core import io as files
from mlops_template.core import uncertainty
from mlops_template.core.model import LoadedModel, package_model
from mlops_template.core.params import Params, load_params
from mlops_template.core.schema import TABLE
from mlops_template.pipeline.train import train_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TRAIN_ROWS = 20_000

log = logging.getLogger("bench")


def _model(params: Params, train: Any) -> LoadedModel:
    estimator = train_model(train, params)
    _, card = package_model(estimator, params.model, len(train))
    return LoadedModel(estimator, card)


def measure(params: Params, rows: list[int]) -> list[dict[str, Any]]:
    from mlops_template import sample

    cfg = sample.parse_sample(params.data.sample)
    train = sample.generate(cfg.model_copy(update={"n_rows": TRAIN_ROWS}))
    base = _model(params, train)
    alt = params.model_copy(
        update={"model": params.model.model_copy(update={"kind": "logistic_regression"})}
    )
    challenger = _model(alt, train)
    out = []
    for n in rows:
        test = sample.generate(cfg.model_copy(update={"n_rows": n, "seed": cfg.seed + 1}))
        started = time.perf_counter()
        with threadpool_limits(limits=params.model.n_threads):  # as the report and table score
            a = uncertainty.Scores(base.probability(test), base.threshold)
            b = uncertainty.Scores(challenger.probability(test), challenger.threshold)
        scored = time.perf_counter()
        result = uncertainty.paired_bootstrap(
            TABLE.target(test), a, b, params.business, params.uncertainty
        )
        done = time.perf_counter()
        out.append(
            {
                "test_rows": n,
                "resamples": result.resamples,
                "score_both_s": round(scored - started, 3),
                "bootstrap_s": round(done - scored, 3),
                "verdicts": {k: i.verdict for k, i in result.intervals.items()},
            }
        )
        log.info("%s rows: %s", f"{n:,}", out[-1])
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    params = load_params(ROOT / "params.yaml")
    runs = measure(params, args.rows)
    payload = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "train_rows": TRAIN_ROWS,
        "runs": runs,
    }
    files.write_json(RESULTS / "uncertainty.json", payload)
    lines = [
        "| Test rows | Resamples | Score both models (s) | Paired bootstrap, 4 metrics (s) |",
        "|---:|---:|---:|---:|",
        *[
            f"| {r['test_rows']:,} | {r['resamples']:,} | {r['score_both_s']:.2f} | "
            f"{r['bootstrap_s']:.2f} |"
            for r in runs
        ],
    ]
    files.write_text(RESULTS / "uncertainty.md", "\n".join(lines) + "\n")
    log.info("wrote %s", RESULTS / "uncertainty.json")


if __name__ == "__main__":
    main()
