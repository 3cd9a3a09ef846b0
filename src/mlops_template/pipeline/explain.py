"""Explain a file's records with the pipeline's model: `make explain INPUT=... OUTPUT=...`.

INPUT is a table (.csv or .parquet, with the scoring contract's columns; a nullable column
may be left out, other columns are ignored) or a .json file shaped like the example request,
`{"records": [...]}`. Every record must pass the scoring contract: otherwise nothing is
written and the error names the first bad rows.

OUTPUT is either
- `.json`: the model's version and sha256, the method, and per record what `/explain`
  answers (key, probability, contact, log-odds, base value, top k contributions), or
- `.parquet`: one row per record and listed contribution (`rank` 1 = the largest), with the
  record's key, probability, contact, log_odds and base_value repeated on each, the value as
  text (null: missing): for a notebook or a BI tool.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.explain import Explanation, build_explainer, explain_frame
from mlops_template.core.model import LoadedModel, load_model, require_model_files
from mlops_template.core.params import Params
from mlops_template.core.table import Table
from mlops_template.core.validation import validate_records

log = logging.getLogger(__name__)
SHOWN_FAILURES = 5


def read_records(source: str, table: Table) -> pd.DataFrame:
    """The records of a table file or of a `{"records": [...]}` JSON file, checked against
    the scoring contract (dtypes as the schema declares them)."""
    if source.lower().endswith(".json"):
        payload = files.read_json(source)
        if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
            raise InputError(f'{source}: expected {{"records": [...]}}, like the example request')
        frame = pd.DataFrame.from_records(payload["records"])
    else:
        frame = files.read_table(source)
    if frame.empty:
        raise InputError(f"{source}: no records")
    for col in table.input_columns:
        if col.nullable and col.name not in frame.columns:
            frame[col.name] = None  # a nullable column left out: missing everywhere
    valid, failures = validate_records(frame.reset_index(drop=True), source, table=table)
    if len(failures):
        shown = "; ".join(
            f"row {int(f['index'])} {f['column']}: {f['check']} (got {f['value']!r})"
            for _, f in failures.head(SHOWN_FAILURES).iterrows()
        )
        rows = failures["index"].nunique()
        raise InputError(f"{source}: {rows} record(s) break the scoring contract: {shown}")
    return valid


def as_json(explained: list[Explanation], model: LoadedModel, top_k: int) -> dict[str, Any]:
    key = model.table.key
    answers = []
    for e in explained:
        answer = e.to_dict()
        answers.append({key: answer.pop("key"), **answer})
    return {
        "model_version": model.version,
        "model_sha256": model.sha256,
        "method": build_explainer(model).method,
        "top_k": top_k,
        "explanations": answers,
    }


def as_rows(explained: list[Explanation], model: LoadedModel) -> pd.DataFrame:
    """One row per (record, listed contribution)."""
    rows = [
        {
            model.table.key: e.key,
            "probability": e.probability,
            "contact": e.contact,
            "log_odds": e.log_odds,
            "base_value": e.base_value,
            "rank": rank,
            "feature": c.feature,
            "value": None if c.value is None else str(c.value),
            "contribution": c.contribution,
            "direction": c.direction,
            "text": c.text,
        }
        for e in explained
        for rank, c in enumerate(e.contributions, start=1)
    ]
    return pd.DataFrame(rows)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help=".csv, .parquet or .json ({'records': [...]})")
    p.add_argument("--output", required=True, help=".json or .parquet")
    p.add_argument("--top-k", type=int, help="contributions per record (default: explain.top_k)")
    p.add_argument("--model", help="model file (default: paths.model)")
    p.add_argument("--card", help="model card (default: paths.model_card)")


def _main(args: argparse.Namespace, params: Params) -> None:
    output = Path(args.output)
    if output.suffix not in (".json", ".parquet"):
        raise InputError(f"{output}: write .json or .parquet")
    top_k = params.explain.top_k if args.top_k is None else args.top_k
    model_path = Path(args.model or params.paths.model)
    card_path = Path(args.card or params.paths.model_card)
    require_model_files(model_path, card_path)
    model = load_model(model_path, card_path)
    records = read_records(args.input, model.table)
    explained = explain_frame(model, records, top_k)
    if output.suffix == ".json":
        files.write_json(output, as_json(explained, model, top_k))
    else:
        files.write_parquet(output, as_rows(explained, model))
    log.info(
        "explained %s records with model %s (%s) -> %s",
        f"{len(explained):,}",
        model.version,
        build_explainer(model).method,
        output,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("explain", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
