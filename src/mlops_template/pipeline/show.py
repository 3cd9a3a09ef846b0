"""Print the key metrics of the last pipeline run as a small table (`make run` ends here)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from mlops_template.core import catalog, cli
from mlops_template.core import io as files
from mlops_template.core.params import Params


def metrics_table(metrics: dict[str, Any], noun: str) -> str:
    """The key metrics, business first; labels and formats from the metric catalog."""
    specs = [catalog.BY_KEY[key] for key in catalog.KEY_METRICS]
    rows = [(spec.title(noun), spec.show(spec.value(metrics))) for spec in specs]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value:>10}" for label, value in rows)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", help="metrics file (default: paths.metrics from params)")


def _main(args: argparse.Namespace, params: Params) -> None:
    metrics = files.read_json(args.metrics or params.paths.metrics)
    sys.stdout.write(metrics_table(metrics, params.project.label_noun) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("show", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
