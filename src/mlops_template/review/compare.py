"""Champion vs challenger: the base revision's model against this branch's, on the same data.

`build` gathers both sides (see `revision`), re-scores the base model on this branch's test
set when the recorded numbers are not comparable (the test set or the money params changed),
and returns one typed `Comparison`: metric deltas with direction-aware markers, changed params,
data and segment changes, and the gate's verdict. The report renders it; the gate prints its
misses. The functions below `build` are pure.

When the two sides are different tables (columns added, removed or retyped, another label),
the base model cannot score this branch's test set. Then each side's recorded metrics (each
on its own test set) are shown, flagged as not like-for-like, and the gate applies the
floors and params.yaml `gate.on_schema_change`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlops_template.core import catalog, gate, metrics, uncertainty
from mlops_template.core import io as files
from mlops_template.core.errors import InputError, ModelIntegrityError
from mlops_template.core.model import LoadedModel, load_model
from mlops_template.core.params import Gate, Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table
from mlops_template.review import revision
from mlops_template.review.revision import Plots, Side

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
    base_profit: float | None  # per record
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
    schema_changes: list[str]  # how the two sides' tables differ (empty: the same table)
    not_comparable: str | None  # why the numbers are each side's own (None: they are comparable)
    base_metrics: dict[str, Any]  # the base numbers compared (re-scored when like_for_like)
    base_plots: Plots | None
    metrics: list[MetricRow]
    params: list[ParamChange]
    data: list[DataRow]
    segments: list[SegmentRow]
    misses: list[str]  # the gate's verdict: empty = pass
    # Paired bootstrap of the guarded metrics' differences on the shared test set (None: not
    # computed, `uncertainty_note` says why).
    uncertainty: uncertainty.PairedBootstrap | None = None
    uncertainty_note: str = ""

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


def metric_rows(base: dict[str, Any], branch: dict[str, Any], noun: str) -> list[MetricRow]:
    """Every metric of the catalog, business first, with deltas and markers."""
    rows = []
    for spec in catalog.METRICS:
        old, new = spec.value(base), spec.value(branch)
        delta = None if old is None or new is None else new - old
        relative = None if delta is None or not old else delta / abs(old)
        rows.append(
            MetricRow(
                spec.key, spec.title(noun), old, new, delta, relative, marker(spec.direction, delta)
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


def schema_diff(base: dict[str, Any] | None, branch: dict[str, Any] | None) -> list[str]:
    """How two recorded table declarations differ, one line per difference.

    A side that recorded none (a revision older than the record) compares equal: whether
    its model can score this branch's data is then found out by trying (`build`).
    """
    if base is None or branch is None:
        return []
    changes = []
    old = {c["name"]: c for c in base.get("columns", [])}
    new = {c["name"]: c for c in branch.get("columns", [])}
    for name in sorted(new.keys() - old.keys()):
        changes.append(f"column `{name}` added ({new[name]['kind']}, {new[name]['dtype']})")
    for name in sorted(old.keys() - new.keys()):
        changes.append(f"column `{name}` removed")
    for name in sorted(old.keys() & new.keys()):
        for key in ("kind", "dtype", "categories", "ordered", "nullable"):
            if old[name].get(key) != new[name].get(key):
                changes.append(
                    f"column `{name}`: {key} {old[name].get(key)!r} -> {new[name].get(key)!r}"
                )
    if base.get("label") != branch.get("label"):
        changes.append(f"label {base.get('label')} -> {branch.get('label')}")
    return changes


def segment_rows(base: dict[str, Any], branch: dict[str, Any], cfg: Gate) -> list[SegmentRow]:
    drops = {(d.column, d.value): d for d in gate.segment_drops(base, branch)}
    rows = []
    for column, groups in branch.get("segments", {}).items():
        for value, group in groups.items():
            old = base.get("segments", {}).get(column, {}).get(value)
            drop = drops.get((column, value))
            rows.append(
                SegmentRow(
                    column=column,
                    value=value,
                    n=int(group["n"]),
                    base_roc_auc=None if drop is None else drop.base,
                    branch_roc_auc=float(group["roc_auc"]),
                    base_profit=None if old is None else float(old["profit_per_record"]),
                    branch_profit=float(group["profit_per_record"]),
                    worse_beyond_tolerance=drop is not None and drop.beyond(cfg),
                )
            )
    return rows


def _fmt(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def data_rows(base: Side, branch: Side, noun: str) -> list[DataRow]:
    """Row counts, label rate, validation and whether each data file changed (DVC hashes)."""
    sb, sr = base.data_summary or {}, branch.data_summary or {}

    def n_train(side: Side) -> str:
        return _fmt(side.card.n_train if side.card else None, "{:,}")

    def row(label: str, old: str, new: str) -> DataRow:
        return DataRow(label, old, new, old != new)

    rows = [
        row("Rows (validated)", _fmt(sb.get("rows"), "{:,}"), _fmt(sr.get("rows"), "{:,}")),
        row(
            f"{noun[:1].upper()}{noun[1:]} rate",
            _fmt(sb.get("label_rate"), "{:.2%}"),
            _fmt(sr.get("label_rate"), "{:.2%}"),
        ),
        row("Training rows", n_train(base), n_train(branch)),
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
        rows.append(
            row(f"Data hash: {key}", _short(base.out_hash(key)), _short(branch.out_hash(key)))
        )
    return rows


def _short(md5: str | None) -> str:
    return md5[:12] if md5 else "—"


def rescore(test: pd.DataFrame, model: LoadedModel, params: Params) -> tuple[dict[str, Any], Plots]:
    """The base model's metrics, ROC curve and confusion counts on this branch's test set."""
    proba = model.probability(test)
    y = model.table.target(test)
    scores = metrics.score_metrics(
        y,
        proba,
        model.threshold,
        test.loc[:, list(params.evaluate.segments)],
        params.evaluate,
        params.business,
    )
    contact = model.decide(proba).astype(int)
    return scores, Plots(
        roc=metrics.roc_points(y, proba),
        importance=[],
        confusion=metrics.confusion_counts(zip(y.tolist(), contact.tolist(), strict=True)),
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


def verdict(
    branch: dict[str, Any],
    base: dict[str, Any],
    params: Params,
    base_name: str,
    not_comparable: str | None,
) -> list[str]:
    """The gate's misses: the floors always; the tolerances against the base only when the
    numbers are comparable, else `gate.on_schema_change`."""
    misses = gate.check_floors(branch, params.gate)
    if not_comparable is None:
        return misses + gate.check_regressions(base, branch, params.gate, base_name)
    if params.gate.on_schema_change == "fail":
        misses.append(
            f"the model cannot be compared with {base_name}'s ({not_comparable}), and params.yaml "
            "gate.on_schema_change is 'fail'"
        )
    return misses


# --- the comparison -----------------------------------------------------------------------


def build(
    root: Path,
    base_rev: str,
    base_name: str,
    params: Params,
    *,
    reproduce_if_needed: bool = True,
    table: Table = TABLE,
) -> Comparison:
    """Compare the workspace (after `dvc repro`) with `base_rev`; raises RevisionError."""
    branch = revision.workspace(root, params)
    return against(
        root,
        branch,
        lambda: files.read_table(root / params.paths.test),
        base_rev,
        base_name,
        params,
        reproduce_if_needed=reproduce_if_needed,
        table=table,
        branch_model=lambda: load_model(
            root / params.paths.model, root / params.paths.model_card, table
        ),
    )


def against(
    root: Path,
    branch: Side,
    branch_test: Callable[[], pd.DataFrame],
    base_rev: str,
    base_name: str,
    params: Params,
    *,
    reproduce_if_needed: bool = True,
    table: Table = TABLE,
    branch_model: Callable[[], LoadedModel] | None = None,
) -> Comparison:
    """Compare `branch` (the workspace, or any revision read with `revision.committed`, as the
    audit pack does) with `base_rev`; `branch_test` reads `branch`'s test set, for re-scoring
    the base model on it. With `branch_model` (loads `branch`'s model), the differences also
    get their paired-bootstrap intervals. Raises RevisionError."""
    branch_test = functools.cache(branch_test)  # read once: re-scoring and the bootstrap
    base, reasons = revision.load_base(
        root,
        base_rev,
        base_name,
        branch,
        reproduce_if_needed=reproduce_if_needed,
        with_model=branch_model is not None,
    )
    base_model: LoadedModel | None = None
    base_metrics, base_plots = base.side.metrics, base.side.plots
    changes = schema_diff(base.side.schema, branch.schema)
    not_comparable = (
        "the two revisions learn from different tables: " + "; ".join(changes) if changes else None
    )
    if reasons and not_comparable is None:
        assert base.model is not None  # load_base fetches it whenever there are reasons
        try:
            model = base_model = base.model.load(table)
            log.info("re-scoring the %s model on this branch's test set: %s", base_name, reasons)
            with threadpool_limits(limits=params.model.n_threads):  # see paired_bootstrap
                base_metrics, rescored = rescore(branch_test(), model, params)
        except (ModelIntegrityError, InputError, KeyError, ValueError) as exc:
            not_comparable = f"the {base_name} model cannot score this branch's test set: {exc}"
            log.warning("%s; comparing each side's recorded metrics instead", not_comparable)
        else:
            importance = base_plots.importance if base_plots else []
            base_plots = Plots(rescored.roc, importance, rescored.confusion)
    if not_comparable is not None:
        reasons = []
    paired, note = None, "no model of this branch was given to score"
    if not_comparable is not None:
        note = "the two models were not scored on the same test set"
    elif branch_model is not None:
        paired, note = paired_bootstrap(
            base, base_model, branch_model, branch_test, params, table, base_name
        )
    misses = verdict(branch.metrics, base_metrics, params, base_name, not_comparable)
    misses += gate.check_significance(
        paired, params.gate, params.uncertainty.primary, base_name, note
    )
    noun = params.project.label_noun
    return Comparison(
        base=base.side,
        branch=branch,
        like_for_like=reasons,
        schema_changes=changes,
        not_comparable=not_comparable,
        base_metrics=base_metrics,
        base_plots=base_plots,
        metrics=metric_rows(base_metrics, branch.metrics, noun),
        params=params_diff(base.side.params, branch.params),
        data=data_rows(base.side, branch, noun),
        segments=segment_rows(base_metrics, branch.metrics, params.gate),
        misses=misses,
        uncertainty=paired,
        uncertainty_note=note,
    )


def paired_bootstrap(
    base: revision.Base,
    base_model: LoadedModel | None,
    branch_model: Callable[[], LoadedModel],
    branch_test: Callable[[], pd.DataFrame],
    params: Params,
    table: Table,
    base_name: str,
) -> tuple[uncertainty.PairedBootstrap | None, str]:
    """Both models scored on this branch's test set, and the paired bootstrap of their
    differences; or None and why not (the comparison goes on without it)."""
    try:
        if base_model is None:
            if base.model is None:
                return None, f"the {base_name} model is not in the DVC cache or remote"
            base_model = base.model.load(table)
        started = time.perf_counter()
        test = branch_test()
        challenger = branch_model()
        # OpenMP threads on a busy machine: 25x slower than one (10,000 rows: 2.2 s vs 0.09 s)
        with threadpool_limits(limits=params.model.n_threads):
            base_scores = uncertainty.Scores(base_model.probability(test), base_model.threshold)
            scores = uncertainty.Scores(challenger.probability(test), challenger.threshold)
        result = uncertainty.paired_bootstrap(
            table.target(test), base_scores, scores, params.business, params.uncertainty
        )
    except (ModelIntegrityError, InputError, KeyError, ValueError) as exc:
        log.warning("no paired bootstrap against %s: %s", base_name, exc)
        return None, f"the two models could not be scored on the same rows: {exc}"
    log.info(
        "paired bootstrap against %s: %s resamples of %s rows in %.1f s",
        base_name,
        f"{result.resamples:,}",
        f"{result.n_rows:,}",
        time.perf_counter() - started,
    )
    return result, ""
