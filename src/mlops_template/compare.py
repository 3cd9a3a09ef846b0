"""Champion vs challenger: the base revision's model against this branch's, on the same data.

`build` gathers both sides (see `revision`), re-evaluates the base model on this branch's test
set when the recorded numbers are not comparable (the test set or the money params changed),
and returns one typed `Comparison`: metric deltas with direction-aware markers, changed params,
data and segment changes, and the gate's verdict. The report renders it; the gate prints its
misses. The functions below `build` are pure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.metrics import roc_curve

from mlops_template import catalog, evaluate, gate, revision, schema, storage
from mlops_template.model import LoadedModel
from mlops_template.params import Gate, Params
from mlops_template.revision import Plots, Side

log = logging.getLogger(__name__)

Marker = Literal["better", "worse", "unchanged", "changed"]
ABSENT = "(absent)"


@dataclass(frozen=True, slots=True)
class MetricRow:
    key: str
    label: str
    base: float | None
    branch: float | None
    delta: float | None  # branch - base
    relative: float | None  # delta / |base|
    marker: Marker


@dataclass(frozen=True, slots=True)
class ParamChange:
    key: str  # dotted
    base: Any  # ABSENT when the key does not exist on that side
    branch: Any


@dataclass(frozen=True, slots=True)
class SegmentRow:
    column: str
    value: str
    n: int
    base_roc_auc: float | None
    branch_roc_auc: float
    base_profit: float | None  # per customer
    branch_profit: float
    worse_beyond_tolerance: bool


@dataclass(frozen=True, slots=True)
class DataRow:
    label: str
    base: str
    branch: str
    changed: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    base: Side
    branch: Side
    like_for_like: list[str]  # why the base model was re-scored on this branch's test set
    base_metrics: dict[str, Any]  # the base numbers compared (re-scored when like_for_like)
    base_plots: Plots | None
    metrics: list[MetricRow]
    params: list[ParamChange]
    data: list[DataRow]
    segments: list[SegmentRow]
    misses: list[str]  # the gate's verdict: empty = pass

    @property
    def passed(self) -> bool:
        return not self.misses


# --- pure parts ---------------------------------------------------------------------------


def marker(direction: catalog.Direction, delta: float | None) -> Marker:
    if delta is None:
        return "changed"
    if abs(delta) <= gate.EPSILON:
        return "unchanged"
    if direction == "neutral":
        return "changed"
    return "better" if (delta > 0) == (direction == "higher") else "worse"


def metric_rows(base: dict[str, Any], branch: dict[str, Any]) -> list[MetricRow]:
    """Every metric of the catalog, business first, with deltas and markers."""
    rows = []
    for spec in catalog.METRICS:
        old, new = spec.value(base), spec.value(branch)
        delta = None if old is None or new is None else new - old
        relative = None if delta is None or not old else delta / abs(old)
        rows.append(
            MetricRow(
                spec.key, spec.label, old, new, delta, relative, marker(spec.direction, delta)
            )
        )
    return rows


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    if not isinstance(tree, dict) or (prefix and not tree):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def params_diff(base: dict[str, Any], branch: dict[str, Any]) -> list[ParamChange]:
    """Only the keys whose value differs (or exists on one side only), sorted."""
    old, new = flatten(base), flatten(branch)
    return [
        ParamChange(key, old.get(key, ABSENT), new.get(key, ABSENT))
        for key in sorted(old.keys() | new.keys())
        if old.get(key, ABSENT) != new.get(key, ABSENT)
    ]


def segment_rows(base: dict[str, Any], branch: dict[str, Any], cfg: Gate) -> list[SegmentRow]:
    rows = []
    for column, groups in branch.get("segments", {}).items():
        for value, group in groups.items():
            old = base.get("segments", {}).get(column, {}).get(value)
            old_auc = None if old is None else float(old["roc_auc"])
            drop = 0.0 if old_auc is None else old_auc - group["roc_auc"]
            rows.append(
                SegmentRow(
                    column=column,
                    value=value,
                    n=int(group["n"]),
                    base_roc_auc=old_auc,
                    branch_roc_auc=float(group["roc_auc"]),
                    base_profit=None if old is None else float(old["profit_per_customer"]),
                    branch_profit=float(group["profit_per_customer"]),
                    worse_beyond_tolerance=drop > cfg.max_segment_roc_auc_drop + gate.EPSILON,
                )
            )
    return rows


def _fmt(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def data_rows(base: Side, branch: Side) -> list[DataRow]:
    """Row counts, label rate, validation and whether each data file changed (DVC hashes)."""
    sb, sr = base.data_summary or {}, branch.data_summary or {}
    cb, cr = base.card or {}, branch.card or {}

    def row(label: str, old: str, new: str) -> DataRow:
        return DataRow(label, old, new, old != new)

    rows = [
        row("Rows (validated)", _fmt(sb.get("rows"), "{:,}"), _fmt(sr.get("rows"), "{:,}")),
        row(
            "Churn rate", _fmt(sb.get("label_rate"), "{:.2%}"), _fmt(sr.get("label_rate"), "{:.2%}")
        ),
        row("Training rows", _fmt(cb.get("n_train"), "{:,}"), _fmt(cr.get("n_train"), "{:,}")),
        row(
            "Test rows",
            _fmt(base.metrics.get("n_test"), "{:,}"),
            _fmt(branch.metrics.get("n_test"), "{:,}"),
        ),
        row(
            "Validation",
            "passed" if base.data_summary is not None else "no summary",
            "passed" if branch.data_summary is not None else "no summary",
        ),
    ]
    nulls_b, nulls_r = sb.get("null_rate", {}) or {}, sr.get("null_rate", {}) or {}
    for column in sorted(nulls_b.keys() | nulls_r.keys()):
        rows.append(
            row(
                f"Missing values: {column}",
                _fmt(nulls_b.get(column), "{:.2%}"),
                _fmt(nulls_r.get(column), "{:.2%}"),
            )
        )
    for key in revision.DATA_PATHS:
        old, new = base.out_hash(key), branch.out_hash(key)
        rows.append(row(f"Data hash: {key}", _short(old), _short(new)))
    return rows


def _short(md5: str | None) -> str:
    return md5[:12] if md5 else "—"


def rescore(test: Any, model: LoadedModel, params: Params) -> tuple[dict[str, Any], Plots]:
    """The base model's metrics, ROC curve and confusion counts on this branch's test set."""
    proba = model.churn_probability(test)
    metrics = evaluate.score_metrics(test, proba, model, params)
    y = test[schema.LABEL].to_numpy().astype(int)
    fpr, tpr, _ = roc_curve(y, proba)
    contact = model.decide(proba).astype(int)
    return metrics, Plots(
        roc=[(float(f), float(t)) for f, t in zip(fpr, tpr, strict=True)],
        importance=[],
        confusion=revision.confusion_counts(zip(y.tolist(), contact.tolist(), strict=True)),
    )


def resample_roc(roc: list[tuple[float, float]], points: int = 21) -> list[float]:
    """True positive rates at evenly spaced false positive rates 0..1 (for a chart)."""
    if not roc:
        return []
    fpr = np.array([p[0] for p in roc])
    tpr = np.array([p[1] for p in roc])
    order = np.lexsort((tpr, fpr))
    grid = np.linspace(0.0, 1.0, points)
    return [round(float(v), 4) for v in np.interp(grid, fpr[order], tpr[order])]


# --- the comparison -----------------------------------------------------------------------


def build(
    root: Path, base_rev: str, base_name: str, params: Params, *, reproduce_if_needed: bool = True
) -> Comparison:
    """Compare the workspace (after `dvc repro`) with `base_rev`; raises RevisionError."""
    branch = revision.workspace(root, params)
    base, reasons = revision.load_base(
        root, base_rev, base_name, branch, reproduce_if_needed=reproduce_if_needed
    )
    base_metrics, base_plots = base.side.metrics, base.side.plots
    if reasons:
        assert base.model is not None  # load_base loads it whenever there are reasons
        log.info("re-scoring the %s model on this branch's test set: %s", base_name, reasons)
        test = storage.read_table(root / params.paths.test)
        base_metrics, rescored = rescore(test, base.model, params)
        importance = base_plots.importance if base_plots else []
        base_plots = Plots(rescored.roc, importance, rescored.confusion)
    misses = gate.check_floors(branch.metrics, params.gate) + gate.check_regressions(
        base_metrics, branch.metrics, params.gate, base_name
    )
    return Comparison(
        base=base.side,
        branch=branch,
        like_for_like=reasons,
        base_metrics=base_metrics,
        base_plots=base_plots,
        metrics=metric_rows(base_metrics, branch.metrics),
        params=params_diff(base.side.params, branch.params),
        data=data_rows(base.side, branch),
        segments=segment_rows(base_metrics, branch.metrics, params.gate),
        misses=misses,
    )
