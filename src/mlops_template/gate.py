"""The release gate: does the model meet the floors in params.yaml?

`make gate` runs this; it exits 1 and names every missed rule, so a CI log says exactly why.
`make gate BASE=main` also compares with a base revision: no guarded metric and no segment may
get worse than on the base by more than the tolerances in params.yaml `gate` (the same check,
and the same messages, as the verdict of the pull-request report).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_template import catalog, cli, storage
from mlops_template.params import Gate, Params

log = logging.getLogger(__name__)
EPSILON = 1e-9  # metrics are rounded to 6 decimals; smaller differences are no change


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
    for column, limit in gate.max_segment_roc_auc_gap.items():
        groups = metrics["segments"].get(column, {})
        aucs = {name: g["roc_auc"] for name, g in groups.items()}
        if len(aucs) < 2:
            continue
        worst, best = min(aucs, key=aucs.__getitem__), max(aucs, key=aucs.__getitem__)
        gap = aucs[best] - aucs[worst]
        if gap > limit:
            misses.append(
                f"segments of {column}: ROC AUC gap {gap:.4f} between {best} ({aucs[best]:.4f}) "
                f"and {worst} ({aucs[worst]:.4f}) exceeds {limit:.4f}"
            )
    return misses


def worsening(spec: catalog.MetricSpec, base: float, branch: float) -> float:
    """How much worse `branch` is than `base` in the metric's own direction (< 0: better)."""
    return base - branch if spec.direction == "higher" else branch - base


def check_regressions(
    base: dict[str, Any], branch: dict[str, Any], gate: Gate, base_name: str = "the base"
) -> list[str]:
    """One message per metric or segment that got worse than on the base beyond tolerance."""
    misses = []
    for key, tolerance in gate.max_regression.items():
        spec = catalog.BY_KEY[key]
        old, new = spec.value(base), spec.value(branch)
        if new is None:
            misses.append(f"{key} is missing from this branch's metrics")
            continue
        if old is None:  # an older base without this metric: nothing to regress from
            continue
        worse, allowed = worsening(spec, old, new), tolerance.allowed(old)
        if worse > allowed + EPSILON:
            share = f" ({worse / abs(old):.2%})" if old else ""
            limit = (
                f"{tolerance.relative:.2%} of {base_name}'s value = {spec.show(allowed)}"
                if tolerance.relative is not None
                else spec.show(allowed)
            )
            misses.append(
                f"{key} got worse by {spec.show(worse)}{share}: {spec.show(old)} on {base_name} "
                f"-> {spec.show(new)} on this branch (allowed: {limit})"
            )
    for column, groups in branch.get("segments", {}).items():
        for value, group in groups.items():
            old_group = base.get("segments", {}).get(column, {}).get(value)
            if old_group is None:
                continue
            drop = old_group["roc_auc"] - group["roc_auc"]
            if drop > gate.max_segment_roc_auc_drop + EPSILON:
                misses.append(
                    f"segment {column}={value}: ROC AUC fell by {drop:.4f}: "
                    f"{old_group['roc_auc']:.4f} on {base_name} -> {group['roc_auc']:.4f} on this "
                    f"branch (allowed: {gate.max_segment_roc_auc_drop:.4f})"
                )
    return misses


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", help="metrics file (default: paths.metrics from params)")
    cli.add_base_arguments(
        p, default=None, help="also compare with this git revision (e.g. main), like the report"
    )


def _main(args: argparse.Namespace, params: Params) -> int:
    if args.base:
        # The same comparison (like-for-like when the test set changed) as `make report`.
        from mlops_template import compare  # imports DVC and git helpers: only when asked

        result = compare.build(
            Path.cwd(),
            args.base,
            args.base_name or args.base,
            params,
            reproduce_if_needed=not args.no_reproduce,
        )
        misses = result.misses
        rules = f"every floor and every tolerance against {result.base.name} is met"
    else:
        metrics = storage.read_json(args.metrics or params.paths.metrics)
        misses = check_floors(metrics, params.gate)
        rules = "every floor in params.yaml 'gate' is met"
    if misses:
        log.error("gate FAILED:\n  - %s", "\n  - ".join(misses))
        return 1
    log.info("gate passed: %s", rules)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("gate", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
