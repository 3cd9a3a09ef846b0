"""Stage 4, train: fit the model and tune its contact threshold for expected profit.

Writes the model file (byte-identical for the same data, params and seed) and its model card,
which records the file's sha256 that every loader checks before unpickling.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence

import pandas as pd
from sklearn.model_selection import TunedThresholdClassifierCV
from threadpoolctl import threadpool_limits

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.model import build_model, package_model, write_model
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table

log = logging.getLogger(__name__)


def train_model(
    train: pd.DataFrame, params: Params, table: Table = TABLE
) -> TunedThresholdClassifierCV:
    """Fit the classifier; choose the threshold that maximises expected profit."""
    model = build_model(params.model, params.business, params.threshold, table)
    with threadpool_limits(limits=params.model.n_threads):
        return model.fit(table.encode(train), table.target(train))


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True)
    p.add_argument("--model", required=True, help="model file (.joblib)")
    p.add_argument("--card", required=True, help="model card with the sha256 (.json)")


def _main(args: argparse.Namespace, params: Params) -> None:
    train = files.read_table(args.train)
    log.info(
        "training %s on %s rows (%s-fold threshold tuning)",
        params.model.kind,
        f"{len(train):,}",
        params.threshold.cv_folds,
    )
    started = time.perf_counter()
    estimator = train_model(train, params)
    log.info(
        "trained in %.1f s; threshold %.4f",
        time.perf_counter() - started,
        estimator.best_threshold_,
    )
    payload, card = package_model(estimator, params.model, len(train))
    write_model(payload, card, args.model, args.card)
    log.info("wrote %s (sha256 %s)", args.model, card.sha256)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("train", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
