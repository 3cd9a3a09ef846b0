"""Print the key metrics of the last pipeline run as a small table (`make run` ends here)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from mlops_template import cli, storage
from mlops_template.catalog import BY_KEY
from mlops_template.params import Params

# The key metrics, business first; labels and formats come from the metric catalog.
KEYS = (
    "business.expected_profit",
    "business.profit_vs_contact_all",
    "business.profit_vs_contact_none",
    "business.contact_rate",
    "ml.precision",
    "business.break_even_precision",
    "ml.recall",
    "ml.roc_auc",
    "ml.pr_auc",
    "ml.brier",
    "threshold",
)


def metrics_table(metrics: dict[str, Any]) -> str:
    specs = [BY_KEY[key] for key in KEYS]
    rows = [(spec.label, spec.show(spec.value(metrics))) for spec in specs]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value:>10}" for label, value in rows)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", help="metrics file (default: paths.metrics from params)")


def _main(args: argparse.Namespace, params: Params) -> None:
    print(metrics_table(storage.read_json(args.metrics or params.paths.metrics)))


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("show", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
