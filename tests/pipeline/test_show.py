"""The metrics table `make run` ends with."""

from __future__ import annotations

import pytest

from mlops_template.core import catalog
from mlops_template.core import io as storage
from mlops_template.pipeline.show import metrics_table
from tests.support import ROOT

pytestmark = pytest.mark.unit


def test_table_has_one_line_per_key_metric_with_its_value() -> None:
    metrics = storage.read_json(ROOT / "reports" / "metrics.json")
    lines = metrics_table(metrics, "churn").splitlines()
    assert len(lines) == len(catalog.KEY_METRICS)
    assert lines[0].startswith("Expected profit")
    assert f"{metrics['business']['expected_profit']:,.0f}" in lines[0]
    assert any(f"{metrics['ml']['roc_auc']:.4f}" in line for line in lines)


def test_a_metric_missing_from_the_file_shows_a_dash() -> None:
    metrics = storage.read_json(ROOT / "reports" / "metrics.json")
    del metrics["ml"]["roc_auc"]
    roc_line = next(line for line in metrics_table(metrics, "x").splitlines() if "ROC AUC" in line)
    assert roc_line.rstrip().endswith("—")
