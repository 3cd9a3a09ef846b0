"""Print the key metrics of the last pipeline run as a small table (`make run` ends here)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mlops_template import cli, storage
from mlops_template.params import Params

ROWS = (
    ("Expected profit (test set)", "business", "expected_profit", "{:,.0f}"),
    ("  vs contacting everyone", "business", "profit_vs_contact_all", "{:+,.0f}"),
    ("  vs contacting no one", "business", "profit_vs_contact_none", "{:+,.0f}"),
    ("Share of customers contacted", "business", "contact_rate", "{:.1%}"),
    ("Precision at threshold", "ml", "precision", "{:.3f}"),
    ("  break-even precision", "business", "break_even_precision", "{:.3f}"),
    ("Recall at threshold", "ml", "recall", "{:.3f}"),
    ("ROC AUC", "ml", "roc_auc", "{:.4f}"),
    ("PR AUC", "ml", "pr_auc", "{:.4f}"),
    ("Brier score", "ml", "brier", "{:.4f}"),
)


def metrics_table(metrics: dict[str, object]) -> str:
    lines = [
        (label, fmt.format(metrics[group][key]))  # type: ignore[index]
        for label, group, key, fmt in ROWS
    ]
    lines.append(("Decision threshold", f"{metrics['threshold']:.4f}"))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {value:>12}" for label, value in lines)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", help="metrics file (default: paths.metrics from params)")


def _main(args: argparse.Namespace, params: Params) -> None:
    print(metrics_table(storage.read_json(args.metrics or params.paths.metrics)))


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("show", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
