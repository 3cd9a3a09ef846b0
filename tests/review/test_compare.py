"""The comparison core on hand-made metrics and schema records: markers, deltas, params and
schema differences, and the verdict when the two sides are different tables."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlops_template.core import catalog
from mlops_template.core.errors import ParamsError
from mlops_template.core.params import Params, parse_params
from mlops_template.review import compare
from tests.support import raw_params, set_dotted

pytestmark = pytest.mark.unit


def _metrics(roc_auc: float = 0.8, brier: float = 0.15, profit: float = 1000.0) -> dict[str, Any]:
    return {
        "n_test": 100,
        "threshold": 0.2,
        "business": {
            "expected_profit": profit,
            "profit_vs_contact_all": 10.0,
            "profit_vs_contact_none": profit,
            "profit_contact_all": profit - 10.0,
        },
        "ml": {"roc_auc": roc_auc, "pr_auc": 0.6, "recall": 0.7, "brier": brier},
        "segments": {"area": {"north": {"n": 50, "roc_auc": roc_auc, "profit_per_record": 1.0}}},
    }


def _gate(**changes: Any) -> Params:
    return parse_params(set_dotted(raw_params(), changes))


def test_markers_are_direction_aware() -> None:
    assert compare.marker("higher", 0.01) == "better"
    assert compare.marker("higher", -0.01) == "worse"
    assert compare.marker("lower", 0.01) == "worse"  # a higher Brier score is worse
    assert compare.marker("lower", -0.01) == "better"
    assert compare.marker("neutral", 0.01) == "changed"
    assert compare.marker("higher", 0.0) == "unchanged"
    assert catalog.BY_KEY["ml.brier"].direction == "lower"
    assert catalog.BY_KEY["ml.log_loss"].direction == "lower"


def test_metric_rows_deltas_and_order() -> None:
    rows = compare.metric_rows(_metrics(0.80, 0.15, 1000.0), _metrics(0.78, 0.14, 1100.0), "x")
    by_key = {r.key: r for r in rows}
    assert rows[0].key == "business.expected_profit"
    assert rows[-1].key == "threshold"
    assert by_key["ml.roc_auc"].delta == pytest.approx(-0.02)
    assert by_key["ml.roc_auc"].marker == "worse"
    assert by_key["ml.brier"].marker == "better"
    assert by_key["business.expected_profit"].relative == pytest.approx(0.1)
    assert by_key["ml.log_loss"].base is None  # missing on both sides: shown as "—"
    assert catalog.BY_KEY["ml.log_loss"].show(None) == "—"
    assert catalog.BY_KEY["business.contact_rate"].show_delta(0.012) == "+1.20 pp"
    assert catalog.BY_KEY["business.expected_profit"].show_delta(-1234.4) == "-1,234"


def test_params_diff_lists_only_changed_keys() -> None:
    base = {"model": {"lr": 0.1, "depth": 3}, "segments": ["a", "b"], "gone": 1}
    branch = copy.deepcopy(base)
    branch["model"]["lr"] = 0.2
    branch["segments"] = ["a"]
    del branch["gone"]
    branch["new"] = {"x": 1}
    changes = {(c.key, str(c.base), str(c.branch)) for c in compare.params_diff(base, branch)}
    assert changes == {
        ("model.lr", "0.1", "0.2"),
        ("segments", "['a', 'b']", "['a']"),
        ("gone", "1", compare.ABSENT),
        ("new.x", compare.ABSENT, "1"),
    }
    assert compare.params_diff(base, copy.deepcopy(base)) == []


def test_tolerance_params_are_validated() -> None:
    with pytest.raises(ParamsError, match="exactly one of 'absolute' or 'relative'"):
        _gate(**{"gate.max_regression": {"ml.roc_auc": {"absolute": 0.1, "relative": 0.1}}})
    with pytest.raises(ParamsError, match="exactly one of 'absolute' or 'relative'"):
        _gate(**{"gate.max_regression": {"ml.roc_auc": {}}})
    with pytest.raises(ParamsError, match=r"ml\.roc_acu.*allowed: .*ml\.roc_auc"):
        _gate(**{"gate.max_regression": {"ml.roc_acu": {"absolute": 0.1}}})
    with pytest.raises(ParamsError, match=r"ml\.positive_rate"):  # no better direction
        _gate(**{"gate.max_regression": {"ml.positive_rate": {"absolute": 0.1}}})


def test_resampled_roc_is_monotone_on_a_fixed_grid() -> None:
    roc = [(0.0, 0.0), (0.1, 0.5), (0.1, 0.6), (0.5, 0.9), (1.0, 1.0)]
    values = compare.resample_roc(roc, 11)
    assert len(values) == 11
    assert values[0] == 0.0
    assert values[-1] == 1.0
    assert values == sorted(values)
    assert values[5] == pytest.approx(0.9)


def _schema(*columns: dict[str, Any], label: Any = None) -> dict[str, Any]:
    return {"table": "t", "columns": list(columns),
            "label": label or {"name": "y", "positive": 1, "negative": 0}}  # fmt: skip


def test_schema_diff_names_every_difference() -> None:
    size = {"name": "size", "kind": "numeric", "dtype": "float64", "nullable": False}
    band = {"name": "band", "kind": "categorical", "dtype": "int64", "categories": [1, 2],
            "ordered": False, "nullable": False}  # fmt: skip
    base = _schema(size, band)
    assert compare.schema_diff(base, copy.deepcopy(base)) == []
    assert compare.schema_diff(None, base) == [], "an older base recorded no schema"
    branch = _schema(
        {**size, "dtype": "int64"},
        {"name": "colour", "kind": "categorical", "dtype": "str", "categories": ["r"],
         "ordered": False, "nullable": True},
        label={"name": "y", "positive": "Yes", "negative": "No"},
    )  # fmt: skip
    changes = compare.schema_diff(base, branch)
    assert "column `colour` added (categorical, str)" in changes
    assert "column `band` removed" in changes
    assert "column `size`: dtype 'float64' -> 'int64'" in changes
    assert any(c.startswith("label ") for c in changes)


def test_verdict_when_the_tables_differ_applies_floors_and_the_param() -> None:
    floors = {"gate.floors": {"ml.roc_auc": 0.7}}
    floors_only = _gate(**floors, **{"gate.on_schema_change": "floors_only"})
    worse = _metrics(roc_auc=0.76, profit=500.0)  # far worse than the base, but above the floors
    base = _metrics(roc_auc=0.9, profit=5000.0)
    assert compare.verdict(worse, base, floors_only, "main", "the tables differ") == []
    assert compare.verdict(worse, base, floors_only, "main", None), "comparable: tolerances apply"
    fail = _gate(**floors, **{"gate.on_schema_change": "fail"})
    [miss] = compare.verdict(worse, base, fail, "main", "the tables differ")
    assert "gate.on_schema_change is 'fail'" in miss
    with pytest.raises(ParamsError, match="on_schema_change"):
        _gate(**{"gate.on_schema_change": "ignore"})
