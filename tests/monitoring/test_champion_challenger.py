"""The shadow challenger against the champion on the same records, and a logged model version
whose training data cannot be found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_template.core import io as files
from mlops_template.core.model import build_model, package_model, write_model
from mlops_template.core.schema import TABLE
from mlops_template.monitoring import monitor
from tests.monitoring.conftest import WINDOW_ROWS, Run

pytestmark = pytest.mark.monitoring


def challenger_model(run: Run, target: Path) -> tuple[Path, Path]:
    """Another model of the same table: the other estimator of params.yaml `model.kind`."""
    params = run.params
    other = "logistic_regression" if params.model.kind != "logistic_regression" else (
        "hist_gradient_boosting"
    )  # fmt: skip
    cfg = params.model.model_copy(update={"kind": other})
    train = files.read_table(run.copy.path / params.paths.train)
    estimator = build_model(cfg, params.business, params.threshold)
    estimator.fit(TABLE.encode(train), TABLE.target(train))
    payload, card = package_model(estimator, cfg, len(train))
    model, card_path = target / "challenger.joblib", target / "challenger_card.json"
    write_model(payload, card, model, card_path)
    return model, card_path


def test_the_challenger_is_compared_with_the_champion_on_the_same_records(run: Run) -> None:
    model, card = challenger_model(run, run.tmp)
    run.simulate("concept_drift", "--challenger-model", str(model), "--challenger-card", str(card))
    _, s = run.monitor()
    c = s["challenger"]
    assert c is not None
    assert c["version"] == json.loads(card.read_text())["version"] != s["window"]["model_version"]
    assert c["records"] == WINDOW_ROWS == s["window"]["records"], "champion lines only analysed"
    assert 0.0 < c["agreement"] < 1.0
    assert c["labelled"] == WINDOW_ROWS
    realised = c["realised"]
    champion = realised["champion"]["profit_per_record"]["value"]
    assert champion == s["performance"]["realised"]["profit_per_record"]["value"]
    diff = realised["difference"]["profit_per_record"]
    gap = realised["challenger"]["profit_per_record"]["value"] - champion
    assert diff["value"] == pytest.approx(gap, abs=1e-5)
    assert diff["low"] <= diff["value"] <= diff["high"]
    assert c["verdict"]
    md = (run.copy.path / run.params.monitor.reports / "summary.md").read_text("utf-8")
    assert "Champion vs shadow challenger" in md


def test_without_challenger_lines_there_is_no_comparison(run: Run) -> None:
    run.simulate("none", "--no-outcomes")
    _, s = run.monitor()
    assert s["challenger"] is None


def test_a_model_version_without_lineage_stops_monitoring_with_what_to_do(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    run.simulate("none", "--no-outcomes")
    for path in run.logs.glob("predictions.jsonl*"):
        lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        text = "".join(json.dumps({**e, "model_version": "0123456789ab"}) + "\n" for e in lines)
        path.write_text(text, "utf-8")
    assert monitor.main(["--logs", str(run.logs), "--outcomes", str(run.outcomes)]) == 1
    assert "0123456789ab" in caplog.text
    assert "lineage_depth" in caplog.text
