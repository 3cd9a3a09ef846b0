"""The gate's rules: may a model ship, on its own and against a base model?

Pure functions over metrics.json payloads and params.yaml `gate`. Each returns one message
per missed rule (empty: the model may ship). `make gate` prints them
(`review/gate.py`), the pull-request report shows them as its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_template.core import catalog
from mlops_template.core.params import Gate
from mlops_template.core.uncertainty import PairedBootstrap

EPSILON = 1e-9  # metrics are rounded to 6 decimals; smaller differences are no change


def worsening(spec: catalog.MetricSpec, base: float, branch: float) -> float:
    """How much worse `branch` is than `base` in the metric's own direction (< 0: better)."""
    return base - branch if spec.direction == "higher" else branch - base


def check_floors(metrics: dict[str, Any], gate: Gate) -> list[str]:
    """One message per missed rule; an empty list means the model may ship."""
    misses = []
    for key, bound in gate.floors.items():
        spec = catalog.BY_KEY[key]
        value = spec.value(metrics)
        if value is None:
            misses.append(f"{key} is missing from the metrics")
        elif worsening(spec, bound, value) > EPSILON:
            side = "below the floor" if spec.direction == "higher" else "above the ceiling"
            misses.append(f"{key} = {spec.show(value)} is {side} {spec.show(bound)}")
    money = metrics.get("business", {})
    profit = money.get("expected_profit", 0.0)
    if gate.must_beat_contact_all and money.get("profit_vs_contact_all", 0.0) <= 0:
        misses.append(
            f"expected profit {profit:,.0f} does not beat contacting everyone "
            f"({money.get('profit_contact_all', 0.0):,.0f})"
        )
    if gate.must_beat_contact_none and money.get("profit_vs_contact_none", 0.0) <= 0:
        misses.append(f"expected profit {profit:,.0f} does not beat contacting no one (0)")
    for column, limit in gate.max_segment_roc_auc_gap.items():
        groups = metrics.get("segments", {}).get(column, {})
        aucs = {name: g["roc_auc"] for name, g in groups.items()}
        if len(aucs) < 2:
            continue
        worst, best = min(aucs, key=aucs.__getitem__), max(aucs, key=aucs.__getitem__)
        gap = aucs[best] - aucs[worst]
        if gap > limit + EPSILON:
            misses.append(
                f"segments of {column}: ROC AUC gap {gap:.4f} between {best} ({aucs[best]:.4f}) "
                f"and {worst} ({aucs[worst]:.4f}) exceeds {limit:.4f}"
            )
    return misses


@dataclass(frozen=True, slots=True)
class SegmentDrop:
    """A segment scored on both sides and how far its ROC AUC fell (< 0: it rose)."""

    column: str
    value: str
    base: float
    branch: float

    @property
    def drop(self) -> float:
        return self.base - self.branch

    def beyond(self, gate: Gate) -> bool:
        return self.drop > gate.max_segment_roc_auc_drop + EPSILON


def segment_drops(base: dict[str, Any], branch: dict[str, Any]) -> list[SegmentDrop]:
    """Every segment present on both sides, in the branch's order."""
    drops = []
    for column, groups in branch.get("segments", {}).items():
        for value, group in groups.items():
            old = base.get("segments", {}).get(column, {}).get(value)
            if old is not None:
                drops.append(
                    SegmentDrop(column, value, float(old["roc_auc"]), float(group["roc_auc"]))
                )
    return drops


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
    for seg in segment_drops(base, branch):
        if seg.beyond(gate):
            misses.append(
                f"segment {seg.column}={seg.value}: ROC AUC fell by {seg.drop:.4f}: "
                f"{seg.base:.4f} on {base_name} -> {seg.branch:.4f} on this branch "
                f"(allowed: {gate.max_segment_roc_auc_drop:.4f})"
            )
    return misses


def check_significance(
    paired: PairedBootstrap | None,
    gate: Gate,
    primary: str,
    base_name: str = "the base",
    unavailable: str = "",
) -> list[str]:
    """`gate.require_significant_improvement`: the challenger must improve `primary` beyond
    the noise of the shared test set (`paired`: the paired bootstrap against the base; None
    when it could not be computed, `unavailable` says why)."""
    if not gate.require_significant_improvement:
        return []
    rule = "gate.require_significant_improvement"
    if paired is None or primary not in paired.intervals:
        why = f": {unavailable}" if unavailable else ""
        return [f"{rule}: no paired comparison with {base_name} to show an improvement{why}"]
    interval = paired.intervals[primary]
    if interval.verdict == "better":
        return []
    return [f"{rule}: {interval.words(paired.confidence)}, against {base_name}"]
