"""Stage 3, split: hold out a test set the model never sees during training or tuning."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.params import Params, Split
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table

log = logging.getLogger(__name__)


def split_table(
    frame: pd.DataFrame, cfg: Split, table: Table = TABLE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test frames; stratified on the label when `cfg.stratify`."""
    train, test = train_test_split(
        frame,
        test_size=cfg.test_size,
        random_state=cfg.seed,
        stratify=table.target(frame) if cfg.stratify else None,
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--validated", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)


def _main(args: argparse.Namespace, params: Params) -> None:
    frame = files.read_table(args.validated)
    train, test = split_table(frame, params.split)
    files.write_parquet(args.train, train)
    files.write_parquet(args.test, test)
    log.info("train %s rows, test %s rows", f"{len(train):,}", f"{len(test):,}")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("split", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
