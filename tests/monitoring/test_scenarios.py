"""Each simulated scenario, monitored like production: `none` is quiet, `data_drift` names the
columns that moved, `concept_drift` fires the retraining rule once outcomes arrive (and not
before), `quality_break` names the broken columns with counts. The columns are never named
here: they follow from the scenario itself (what it changed) and the schema."""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd
import pytest

from mlops_template.core.events import PredictionEvent
from mlops_template.core.schema import TABLE
from mlops_template.monitoring import simulate
from tests.monitoring.conftest import END, WINDOW_ROWS, Run

pytestmark = pytest.mark.monitoring


def changed_columns(run: Run, scenario: str) -> set[str]:
    """The features whose values the scenario changed (same seed, with and without it)."""
    params, root = run.params, run.copy.path
    seed, end = params.monitor.simulate.seed, datetime.fromisoformat(END)
    drifted, _, _ = simulate.simulate(params, scenario, WINDOW_ROWS, seed, end, root)
    plain, _, _ = simulate.simulate(params, "none", WINDOW_ROWS, seed, end, root)
    return {
        name
        for name in TABLE.feature_names
        if not drifted[name].astype(object).equals(plain[name].astype(object))
    }


def test_no_drift_triggers_nothing(run: Run) -> None:
    run.simulate("none")
    code, s = run.monitor()
    assert code == 0
    assert s["status"] == "healthy", s["alerts"]
    assert s["retrain"] is False
    assert s["reasons"] == []
    assert s["drift"]["drifted"] == []
    assert not s["drift"]["dataset_drift"]
    assert not s["prediction"]["drifted"]
    assert s["quality"]["passed"], s["quality"]["problems"]
    assert s["performance"]["status"] == "judged"
    assert s["performance"]["labelled"] == WINDOW_ROWS
    assert not any(c["triggered"] for c in s["rule"]["checks"])


def test_data_drift_is_flagged_naming_the_columns_that_moved(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    run.simulate("data_drift")
    code, s = run.monitor()
    changed = changed_columns(run, "data_drift")
    drifted = set(s["drift"]["drifted"])
    assert code == 0
    assert s["drift"]["dataset_drift"], s["drift"]
    assert drifted, "no column flagged"
    assert drifted <= changed, f"flagged {drifted - changed}, which the scenario left alone"
    assert len(drifted) >= len(changed) / 2, (drifted, changed)
    for column in s["drift"]["columns"]:
        if column["drifted"]:
            assert column["reason"]
            assert column["psi"] >= run.params.monitor.drift.min_psi
    out = capsys.readouterr().out
    assert all(name in out for name in drifted), out
    assert s["status"] in ("attention", "retrain")


def test_concept_drift_is_caught_by_the_outcomes_and_fires_the_rule(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    run.simulate("concept_drift")
    code, s = run.monitor("--check")
    assert code == 3, "--check exits 3 when the rule says retrain"
    assert s["retrain"] is True
    assert s["status"] == "retrain"
    assert not s["drift"]["dataset_drift"], "the inputs did not change"
    triggered = {c["name"] for c in s["rule"]["checks"] if c["triggered"]}
    assert triggered & {"roc_auc", "profit_per_record"}, s["rule"]["checks"]
    realised = s["performance"]["realised"]["profit_per_record"]
    assert realised["high"] < s["performance"]["expected"]["profit_per_record"]
    assert "retrain because" in capsys.readouterr().out


def test_a_window_without_outcomes_is_not_judged_and_cannot_fire_the_rule(run: Run) -> None:
    run.simulate("concept_drift", "--no-outcomes")
    code, s = run.monitor("--check")
    assert code == 0
    assert s["performance"]["status"] == "waiting"
    assert s["performance"]["labelled"] == 0
    assert s["performance"]["realised"] is None
    assert s["retrain"] is False
    assert "no outcomes" in s["performance"]["note"]


def test_too_few_outcomes_are_reported_but_not_judged(run: Run) -> None:
    run.simulate("concept_drift")
    first = sorted(run.outcomes.iterdir())[0]
    pd.read_parquet(first).head(50).to_parquet(first, index=False)
    _, s = run.monitor()
    assert s["performance"]["status"] == "too_few"
    assert s["performance"]["labelled"] == 50
    assert s["performance"]["realised"]["roc_auc"]["value"] is not None
    assert s["retrain"] is False


def test_quality_break_is_reported_by_column_with_counts(run: Run) -> None:
    run.simulate("quality_break")
    _, s = run.monitor()
    order = simulate.importance_order(run.params, TABLE, run.copy.path)
    sample = pd.read_parquet(run.copy.path / run.params.paths.test).head(100)
    _, broken = simulate.break_quality(sample, TABLE, order)
    assert broken, "the schema gives the simulator something to break"
    q = s["quality"]
    assert not q["passed"]
    by_column = {p["column"]: p for p in q["problems"]}
    assert set(broken) <= set(by_column), (broken, list(by_column))
    nulled = broken[0] if TABLE.by_name[broken[0]].nullable else None
    if nulled:
        assert by_column[nulled]["rows"] == WINDOW_ROWS == q["nulls"][nulled]
    assert s["status"] == "attention"
    assert s["retrain"] is False
    assert all(p["message"] for p in q["problems"])


def test_the_same_window_monitored_twice_counts_once_in_the_history(run: Run) -> None:
    run.simulate("data_drift")
    _, first = run.monitor()
    _, second = run.monitor()
    assert first["window"]["id"] == second["window"]["id"]
    assert len(second["rule"]["history"]) == 1
    assert second["rule"]["drift_streak"] == 1


def test_drift_in_consecutive_windows_fires_the_rule(run: Run) -> None:
    need = run.params.monitor.rule.drift_windows
    days = run.params.monitor.simulate.days
    results = []
    for i in range(need):
        end = (pd.Timestamp(END) + pd.Timedelta(days=days * (i + 1))).isoformat()
        run.simulate("data_drift", "--no-outcomes", "--seed", str(100 + i), "--end", end)
        results.append(run.monitor()[1])
    assert [r["rule"]["drift_streak"] for r in results] == list(range(1, need + 1))
    assert [r["retrain"] for r in results] == [False] * (need - 1) + [True]
    assert "consecutive windows" in results[-1]["reasons"][0]


def test_the_simulated_logs_are_the_services_format_and_foreign_logs_are_kept(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    run.simulate("none")
    lines = (run.logs / "predictions.jsonl").read_text("utf-8").splitlines()
    event = PredictionEvent.model_validate_json(lines[0])
    assert event.role == "champion"
    assert set(event.features) == {c.name for c in TABLE.input_columns}
    assert 0.0 <= event.probability <= 1.0
    assert sorted(p.name for p in run.logs.glob("predictions.jsonl*")) == [
        "predictions.jsonl", "predictions.jsonl.1", "predictions.jsonl.2",
    ]  # fmt: skip
    (run.logs / ".simulated").unlink()  # now they look like the service's own logs
    before = (run.logs / "predictions.jsonl").read_bytes()
    argv = ["--scenario", "none", "--rows", "100", "--logs", str(run.logs), "--no-outcomes"]
    assert simulate.main(argv) == 1
    assert "did not write" in caplog.text
    assert (run.logs / "predictions.jsonl").read_bytes() == before


def test_fresh_ids_follow_the_ids_shape_and_avoid_every_known_id(run: Run) -> None:
    assert TABLE.id is not None
    taken = simulate.taken_keys(run.params, TABLE, run.copy.path)
    keys = simulate.fresh_keys(taken, 50, TABLE.id, seed=1)
    assert len(set(keys)) == 50
    assert not set(map(str, keys)) & set(taken.astype(str))
    if TABLE.id.pattern:
        assert all(re.fullmatch(TABLE.id.pattern, str(k)) for k in keys)
