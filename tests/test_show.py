"""The metrics table `make run` ends with."""

from __future__ import annotations

import pytest

from conftest import ROOT
from mlops_template import storage
from mlops_template.show import KEYS, metrics_table

pytestmark = pytest.mark.unit


def test_table_has_one_line_per_key_metric_with_its_value() -> None:
    metrics = storage.read_json(ROOT / "reports" / "metrics.json")
    lines = metrics_table(metrics).splitlines()
    assert len(lines) == len(KEYS)
    assert lines[0].startswith("Expected profit")
    assert f"{metrics['business']['expected_profit']:,.0f}" in lines[0]
    assert any(f"{metrics['ml']['roc_auc']:.4f}" in line for line in lines)


def test_a_metric_missing_from_the_file_shows_a_dash() -> None:
    metrics = storage.read_json(ROOT / "reports" / "metrics.json")
    del metrics["ml"]["roc_auc"]
    roc_line = next(line for line in metrics_table(metrics).splitlines() if "ROC AUC" in line)
    assert roc_line.rstrip().endswith("—")
