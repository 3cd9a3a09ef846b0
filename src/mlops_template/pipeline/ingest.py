"""Stage 1, ingest: bring the table into data/raw, from the built-in sample or a file.

`data.source` in params.yaml is either `sample` (the seeded generator) or a path / URL to a
CSV or Parquet file with the columns of the schema. Nothing is checked here beyond "it is a
table": the validate stage owns the data contract.

Then the labelled production windows `make retrain` added (`monitor.retrain.windows`, one
Parquet file per window, each tracked with `dvc add`), oldest first by file name: after the
source (`policy: append`) or instead of it (`policy: sliding`). A record whose id appears again
keeps its latest version (the schema's ids are unique).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.params import Data, MonitorRetrain, Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table

log = logging.getLogger(__name__)


def ingest(data: Data) -> pd.DataFrame:
    """The raw table named by `data.source`."""
    if data.uses_sample:
        from mlops_template import sample  # the sample's own code: only when asked for

        return sample.generate(sample.parse_sample(data.sample))
    tracked = Path(f"{data.source}.dvc")
    if tracked.is_file() and not Path(data.source).exists():
        raise InputError(
            f"{data.source}: not in the workspace, but DVC tracks it ({tracked}): "
            "run `make pull-data` (or `dvc pull`) to fetch it from the DVC remote"
        )
    return files.read_table(data.source)


def with_windows(frame: pd.DataFrame, cfg: MonitorRetrain, table: Table = TABLE) -> pd.DataFrame:
    """`frame` (the source) with the production windows in `cfg.windows`, if any."""
    directory = Path(cfg.windows)
    paths = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    missing = sorted(m for m in directory.glob("*.parquet.dvc") if not m.with_suffix("").exists())
    if missing:
        raise InputError(
            f"{missing[0].with_suffix('')}: not in the workspace, but DVC tracks it "
            f"({missing[0]}): run `make pull-data` (or `dvc pull`) to fetch it"
        )
    if not paths:
        return frame
    windows = [files.read_table(p) for p in paths]
    out = pd.concat(windows if cfg.policy == "sliding" else [frame, *windows], ignore_index=True)
    if table.id is not None:
        out = out.drop_duplicates(table.id.name, keep="last", ignore_index=True)
    log.info("added %d production window(s) from %s (%s)", len(paths), directory, cfg.policy)
    return out


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="where to write the raw table (.parquet)")


def _main(args: argparse.Namespace, params: Params) -> None:
    source = "built-in sample" if params.data.uses_sample else params.data.source
    log.info("ingesting from %s", source)
    frame = with_windows(ingest(params.data), params.monitor.retrain)
    files.write_parquet(args.out, frame)
    log.info("wrote %s rows x %s columns to %s", f"{len(frame):,}", frame.shape[1], args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("ingest", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
