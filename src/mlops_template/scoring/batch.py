"""Score a whole table in bounded memory: the in-process engine and the command line.

    python -m mlops_template.scoring --input records.parquet --output scored/
    python -m mlops_template.scoring --input exports/ --output scored/ --engine spark

The input (a CSV or Parquet file, or a directory of Parquet files) is streamed `score.chunk_rows`
rows at a time (params.yaml): each chunk is checked against the scoring contract, its valid
records scored by the hash-checked model (`score.score_chunk`), its invalid ones set apart with
the reason. OUTPUT is a directory (`output.py`): scores, quarantine and the campaign summary,
written whole or not at all. Records whose key repeats are scored each time; the summary
counts them and the log warns. The run fails, writing nothing, when more than
`score.max_invalid_share` of the records are invalid. A progress bar (rows, rate, time left)
shows on a terminal, never in CI logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.model import LoadedModel, load_model, require_model_files
from mlops_template.core.params import Params, Score
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table
from mlops_template.scoring.campaign import EXAMPLES, Campaign, summary_table
from mlops_template.scoring.output import SUMMARY, Outputs, atomic_directory
from mlops_template.scoring.score import score_chunk
from mlops_template.scoring.source import (
    Columns,
    Source,
    describe_columns,
    open_source,
    plan_columns,
    read_chunks,
)

log = logging.getLogger(__name__)
ENGINES = ("pandas", "spark")


class TooManyInvalidError(InputError):
    """More of the input breaks the scoring contract than params allow."""


def interactive() -> bool:
    """Progress bars on a terminal; none in CI logs or when output is redirected."""
    return sys.stderr.isatty() and not os.environ.get("CI")


class Progress:
    """Rows done, rate and time left: by rows for Parquet (the count is known up front), by
    bytes read for CSV."""

    def __init__(self, source: Source, enabled: bool) -> None:
        self.by_rows = source.rows is not None
        self.rows = 0
        self.bar = tqdm(
            total=source.rows if self.by_rows else source.bytes,
            unit=" rows" if self.by_rows else "B",
            unit_scale=True,
            desc="scoring",
            disable=not enabled,
            mininterval=0.5,
            dynamic_ncols=True,
        )

    def update(self, rows: int, done: int) -> None:
        self.rows += rows
        if self.by_rows:
            self.bar.update(rows)
        else:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix_str(f"{self.rows:,} rows", refresh=False)

    def close(self) -> None:
        self.bar.close()


def check_share(campaign: Campaign, cfg: Score, source: Source, total: int | None = None) -> None:
    """Fail when more records are invalid than `cfg.max_invalid_share` of `total` (default:
    the records read so far): with the total known up front, as soon as that is certain."""
    whole = total or campaign.read
    if not whole or campaign.quarantined <= cfg.max_invalid_share * whole:
        return
    top = ", ".join(f"{c} ({n:,})" for c, n in campaign.by_column.most_common(EXAMPLES))
    examples = "\n  - ".join(campaign.examples)
    raise TooManyInvalidError(
        f"{source}: {campaign.quarantined:,} of {whole:,} records "
        f"({campaign.quarantined / whole:.2%}) break the scoring contract, more than "
        f"score.max_invalid_share ({cfg.max_invalid_share:.2%}) allows; nothing was written. "
        f"Columns most often at fault: {top}. For example:\n  - {examples}"
    )


def warn_repeated(campaign: Campaign, source: Source) -> None:
    """Say how many scored records repeat an earlier one's key (scored again, and counted in
    the money again), with a few of the keys."""
    if campaign.duplicate_keys:
        log.warning(
            "%s: %s scored record(s) repeat the key of an earlier one (e.g. %s); each is scored "
            "and counted in the money every time (%s: records.duplicate_keys)",
            source,
            f"{campaign.duplicate_keys:,}",
            ", ".join(campaign.repeated),
            SUMMARY,
        )


def score_in_process(
    source: Source,
    columns: Columns,
    model: LoadedModel,
    cfg: Score,
    directory: Path,
    progress: bool = False,
) -> Campaign:
    """Score `source` chunk by chunk into `directory`; the campaign's totals."""
    campaign = Campaign(check_keys=model.table.id is not None)
    bar = Progress(source, progress)
    try:
        with threadpool_limits(limits=cfg.threads), Outputs(directory, model) as outputs:
            for chunk in read_chunks(source, columns, cfg.chunk_rows):
                rows = np.arange(chunk.start, chunk.start + len(chunk.frame), dtype=np.int64)
                scored = score_chunk(chunk.frame, model, rows, str(source))
                outputs.write(scored)
                campaign.add(scored)
                bar.update(len(chunk.frame), chunk.done)
                if source.rows is not None:
                    check_share(campaign, cfg, source, total=source.rows)
    finally:
        bar.close()
    return campaign


def score_table(
    input_path: str | Path,
    output: str | Path,
    model_files: tuple[str | Path, str | Path],
    params: Params,
    *,
    table: Table = TABLE,
    engine: str = "pandas",
    master: str = "local[2]",
    progress: bool = False,
    **spark_options: Any,
) -> dict[str, Any]:
    """Score the table at `input_path` with the model in `model_files` (its file and card,
    hash-checked) into the directory `output`; the campaign summary."""
    path, card = Path(model_files[0]), Path(model_files[1])
    require_model_files(path, card)
    model = load_model(path, card, table)
    log.info("scoring %s with model %s (%s engine)", input_path, model.version, engine)
    source = open_source(input_path)
    columns = plan_columns(source.columns, table, str(source))
    describe_columns(columns, source)
    cfg = params.score
    with atomic_directory(Path(output)) as tmp:
        if engine == "spark":
            from mlops_template.scoring import spark  # pyspark only when asked for

            campaign = spark.score(
                source,
                columns,
                model,
                cfg,
                tmp,
                (path, card),
                master=master,
                progress=progress,
                **spark_options,
            )
        else:
            campaign = score_in_process(source, columns, model, cfg, tmp, progress)
        if campaign.read == 0:
            raise InputError(f"{source}: no records to score")
        check_share(campaign, cfg, source)
        warn_repeated(campaign, source)
        summary = campaign.summary(params.business, model, cfg, input=str(source), engine=engine)
        files.write_json(tmp / SUMMARY, summary)
    return summary


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input", required=True, help="a .csv / .parquet file or a directory of .parquet"
    )
    p.add_argument("--output", required=True, help="the output directory (replaced whole)")
    p.add_argument("--engine", choices=ENGINES, default="pandas", help="default: %(default)s")
    p.add_argument("--master", default="local[2]", help="Spark master (--engine spark)")
    p.add_argument("--model", help="model file (default: paths.model from params)")
    p.add_argument("--card", help="its model card (default: paths.model_card from params)")


def _main(args: argparse.Namespace, params: Params) -> None:
    started = time.perf_counter()
    summary = score_table(
        args.input,
        args.output,
        (args.model or params.paths.model, args.card or params.paths.model_card),
        params,
        engine=args.engine,
        master=args.master,
        progress=interactive(),
    )
    seconds = time.perf_counter() - started
    read = summary["records"]["read"]
    log.info(
        "%s records in %.1f s (%s records/s); wrote %s",
        f"{read:,}",
        seconds,
        f"{read / seconds:,.0f}",
        args.output,
    )
    sys.stdout.write(summary_table(summary, params.project.positive_name))


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("score", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
