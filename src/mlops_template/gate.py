"""The release gate: does the model meet the floors in params.yaml?

`make gate` runs this; it exits 1 and names every missed rule, so a CI log says exactly why.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from mlops_template import cli, storage
from mlops_template.params import Gate, Params

log = logging.getLogger(__name__)


def check_floors(metrics: dict[str, Any], gate: Gate) -> list[str]:
    """One message per missed rule; an empty list means the model may ship."""
    misses = []
    ml, money = metrics["ml"], metrics["business"]
    for name, floor in gate.floors.model_dump().items():
        if ml[name] < floor:
            misses.append(f"ml.{name} = {ml[name]:.4f} is below the floor {floor:.4f}")
    if gate.must_beat_contact_all and money["profit_vs_contact_all"] <= 0:
        misses.append(
            f"expected profit {money['expected_profit']:,.0f} does not beat contacting everyone "
            f"({money['profit_contact_all']:,.0f})"
        )
    if gate.must_beat_contact_none and money["profit_vs_contact_none"] <= 0:
        misses.append(
            f"expected profit {money['expected_profit']:,.0f} does not beat contacting no one (0)"
        )
    for column, groups in metrics["segments"].items():
        aucs = {name: g["roc_auc"] for name, g in groups.items()}
        if len(aucs) < 2:
            continue
        worst, best = min(aucs, key=aucs.__getitem__), max(aucs, key=aucs.__getitem__)
        gap = aucs[best] - aucs[worst]
        if gap > gate.max_segment_roc_auc_gap:
            misses.append(
                f"segments of {column}: ROC AUC gap {gap:.4f} between {best} ({aucs[best]:.4f}) "
                f"and {worst} ({aucs[worst]:.4f}) exceeds {gate.max_segment_roc_auc_gap:.4f}"
            )
    return misses


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", help="metrics file (default: paths.metrics from params)")


def _main(args: argparse.Namespace, params: Params) -> int:
    metrics = storage.read_json(args.metrics or params.paths.metrics)
    misses = check_floors(metrics, params.gate)
    if misses:
        log.error("gate FAILED:\n  - %s", "\n  - ".join(misses))
        return 1
    log.info("gate passed: every floor in params.yaml 'gate' is met")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("gate", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
