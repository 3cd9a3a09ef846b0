"""Stage 1, ingest: bring the table into data/raw, from the built-in sample or a file.

`data.source` in params.yaml is either `sample` (the seeded generator) or a path / URL to a
CSV or Parquet file with the columns of the schema. Nothing is checked here beyond "it is a
table": the validate stage owns the data contract.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import pandas as pd

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.params import Data, Params

log = logging.getLogger(__name__)


def ingest(data: Data) -> pd.DataFrame:
    """The raw table named by `data.source`."""
    if data.uses_sample:
        from mlops_template import sample  # the sample's own code: only when asked for

        return sample.generate(sample.parse_sample(data.sample))
    return files.read_table(data.source)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="where to write the raw table (.parquet)")


def _main(args: argparse.Namespace, params: Params) -> None:
    source = "built-in sample" if params.data.uses_sample else params.data.source
    log.info("ingesting from %s", source)
    frame = ingest(params.data)
    files.write_parquet(args.out, frame)
    log.info("wrote %s rows x %s columns to %s", f"{len(frame):,}", frame.shape[1], args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("ingest", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
