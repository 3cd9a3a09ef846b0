"""`make explain`: the batch form of `/explain` (pipeline/explain.py), with a small model trained
by the pipeline's own functions on the team's rows (the scoring tests' `trained`).

- the example request to .json: the model's log-odds, additive contributions, and per record
  exactly what the service's `/explain` answers (the request model and `explain_rows` the
  service calls, in process: no BentoML app);
- the same to .parquet: one row per record and contribution, the same numbers;
- bad input (a record that breaks the contract, a file of the wrong shape, an output of an
  unknown kind): exit 1, the message names what is wrong, nothing is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.explain import OTHER_FEATURES, build_explainer, explain_rows
from mlops_template.core.model import LoadedModel
from mlops_template.core.params import Params
from mlops_template.pipeline.explain import main
from mlops_template.serving import contract
from mlops_template.serving import explain as explaining
from tests.scoring.conftest import Trained, one_record_corruptions
from tests.support import ROOT, Corrupt, example_records

pytestmark = pytest.mark.model

ADDITIVITY = 1e-6
PARITY = 1e-9


@pytest.fixture(scope="module")
def model(trained: Trained) -> LoadedModel:
    """The model the command is given, checked against its card like the command does."""
    return trained.model


def _explain(files: tuple[Path, Path], source: Path, output: Path, *more: str) -> int:
    path, card = files
    return main([
        "--params", str(ROOT / "params.yaml"), "--input", str(source), "--output", str(output),
        "--model", str(path), "--card", str(card), *more,
    ])  # fmt: skip


def _log_odds(model: LoadedModel, records: list[dict[str, Any]]) -> np.ndarray:
    """The model's own log-odds (decision_function) for the records, as the service reads them."""
    frame = contract.records_frame([contract.Record.model_validate(r) for r in records])
    return np.asarray(model.estimator.estimator_.decision_function(model.table.encode(frame)))


def _service_answers(params: Params, model: LoadedModel, body: dict[str, Any]) -> list[Any]:
    """What `/explain` answers for `body`: the service's request model, then `explain_rows`
    and the answer models, exactly as `ModelService.explain` calls them."""
    request = explaining.build_request_model(params.explain).model_validate(body)
    rows = [r.__dict__ for r in request.records]  # type: ignore[attr-defined]
    explained = explain_rows(model, rows, request.top_k)  # type: ignore[attr-defined]
    return [a.model_dump(mode="json") for a in explaining.answers(explained, model.version)]


def _check_additive(answer: dict[str, Any], raw: float) -> None:
    assert math.isclose(answer["log_odds"], raw, abs_tol=PARITY), (answer["log_odds"], raw)
    total = answer["base_value"] + sum(c["contribution"] for c in answer["contributions"])
    assert math.isclose(total, answer["log_odds"], abs_tol=ADDITIVITY), "additivity"
    assert answer["probability"] == pytest.approx(1 / (1 + math.exp(-raw)), abs=1e-12)


@pytest.mark.parametrize("top_k", [None, 1, "all"])
def test_json_is_what_the_service_explains_and_adds_up_to_the_log_odds(
    params: Params, model: LoadedModel, trained: Trained, tmp_path: Path, top_k: int | str | None
) -> None:
    n = len(model.table.features)
    k = params.explain.top_k if top_k is None else (n if top_k == "all" else int(top_k))
    output = tmp_path / "explanations.json"
    more = () if top_k is None else ("--top-k", str(k))
    assert _explain(trained.files, ROOT / params.paths.example, output, *more) == 0
    written = json.loads(output.read_text(encoding="utf-8"))
    records = example_records()
    assert written["model_version"] == model.version
    assert written["model_sha256"] == model.sha256
    assert written["method"] == build_explainer(model).method
    assert written["top_k"] == k
    answers = written["explanations"]
    key = model.table.key  # the id column, or the row number for a table without one
    expected = [r[key] for r in records] if model.table.id else list(range(len(records)))
    assert [a[key] for a in answers] == expected, "one per record, in order"
    for answer, record, raw in zip(answers, records, _log_odds(model, records), strict=True):
        _check_additive(answer, float(raw))
        shown = [c for c in answer["contributions"] if c["feature"] != OTHER_FEATURES]
        assert len(shown) == min(k, n)
        assert len(answer["contributions"]) - len(shown) == (1 if k < n else 0)
        for c in shown:
            assert c["value"] == record.get(c["feature"]), c  # the record's value, as sent
    body: dict[str, Any] = {"records": records} | ({} if top_k is None else {"top_k": k})
    served = _service_answers(params, model, body)
    assert {a.pop("model_version") for a in served} == {model.version}
    assert answers == served, "make explain's .json differs from what /explain answers"


def test_parquet_has_a_row_per_record_and_contribution_with_the_same_numbers(
    params: Params, model: LoadedModel, trained: Trained, tmp_path: Path
) -> None:
    as_json, as_parquet = tmp_path / "e.json", tmp_path / "e.parquet"
    assert _explain(trained.files, ROOT / params.paths.example, as_json) == 0
    assert _explain(trained.files, ROOT / params.paths.example, as_parquet) == 0
    answers = json.loads(as_json.read_text(encoding="utf-8"))["explanations"]
    rows = pd.read_parquet(as_parquet)
    key = model.table.key
    assert rows[key].drop_duplicates().tolist() == [a[key] for a in answers]
    assert len(rows) == sum(len(a["contributions"]) for a in answers)
    records = example_records()
    for answer, raw in zip(answers, _log_odds(model, records), strict=True):
        mine = rows[rows[key] == answer[key]]
        assert mine["rank"].tolist() == list(range(1, len(mine) + 1))
        for field in ("probability", "contact", "log_odds", "base_value"):
            assert set(mine[field]) == {answer[field]}, field  # repeated on every row, exact
        listed = [
            {
                "feature": c["feature"],
                "value": None if c["value"] is None else str(c["value"]),
                "contribution": c["contribution"],
                "direction": c["direction"],
                "text": c["text"],
            }
            for c in answer["contributions"]
        ]
        got = mine.loc[:, list(listed[0])].astype(object)
        assert got.where(got.notna(), None).to_dict("records") == listed
        total = mine["base_value"].iloc[0] + mine["contribution"].sum()
        assert math.isclose(total, float(raw), abs_tol=ADDITIVITY), "additivity"


# --- bad input: exit 1, the reason, nothing written ---------------------------------------------


def _first_record_broken(case: Corrupt) -> dict[str, Any]:
    """The example's first record with `case` applied (the corruptions break row 0)."""
    first = case.apply(pd.DataFrame.from_records(example_records())).to_dict("records")[0]
    return {str(k): v for k, v in first.items()}  # plain Python values


def _json_cases() -> list[Corrupt]:
    """The schema's one-record corruptions that JSON can carry (not NaN or infinity)."""
    cases = []
    for case in one_record_corruptions():
        try:
            json.dumps(_first_record_broken(case), allow_nan=False, default=str)
        except ValueError:
            continue
        cases.append(case)
    return cases


JSON_CASES = _json_cases()


def _refused(trained: Trained, source: Path, output: Path, caplog: pytest.LogCaptureFixture) -> str:
    """Run on bad input over an existing output: exit 1, the output untouched; the log."""
    output.write_bytes(b"an earlier run's output")
    caplog.clear()
    assert _explain(trained.files, source, output) == 1
    assert output.read_bytes() == b"an earlier run's output", "a failed run wrote its output"
    assert [p.name for p in output.parent.iterdir()] == [output.name], "no temporary files"
    return caplog.text


def _records_file(directory: Path, records: Any) -> Path:
    path = directory / "records.json"
    path.write_text(json.dumps(records, default=str), encoding="utf-8")
    return path


def test_the_corruption_list_reaches_json() -> None:
    assert len(JSON_CASES) >= 5, [c.id for c in JSON_CASES]


@pytest.mark.parametrize("case", JSON_CASES, ids=[c.id for c in JSON_CASES])
def test_a_record_that_breaks_the_contract_is_named_and_nothing_is_written(
    params: Params, model: LoadedModel, trained: Trained, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: Corrupt,
) -> None:  # fmt: skip
    records = [_first_record_broken(case), *example_records()[1:]]
    source = _records_file(tmp_path, {"records": records})
    for suffix in (".json", ".parquet"):
        output = tmp_path / suffix.lstrip(".") / f"explanations{suffix}"
        output.parent.mkdir()
        text = _refused(trained, source, output, caplog)
        assert "break the scoring contract" in text, text
        assert "1 record(s)" in text, text
        assert f"row 0 {case.column}" in text, f"{case.id}: the row and the column: {text}"


WRONG_SHAPES = {  # the file's text -> what the message must say
    "a list, not {records}": ("[]", '{"records": [...]}'),
    "records not a list": ('{"records": {"a": 1}}', '{"records": [...]}'),
    "no records": ('{"records": []}', "no records"),
    "not JSON": ("{records", "not valid JSON"),
}


@pytest.mark.parametrize("name", list(WRONG_SHAPES))
def test_a_file_of_the_wrong_shape_is_named_and_nothing_is_written(
    params: Params, model: LoadedModel, trained: Trained, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:  # fmt: skip
    content, expected = WRONG_SHAPES[name]
    source = tmp_path / "records.json"
    source.write_text(content, encoding="utf-8")
    output = tmp_path / "out" / "explanations.json"
    output.parent.mkdir()
    text = _refused(trained, source, output, caplog)
    assert str(source) in text, f"{name}: the file is named: {text}"
    assert expected in text, f"{name}: {text}"


def test_an_output_of_an_unknown_kind_or_a_missing_input_is_refused(
    params: Params, model: LoadedModel, trained: Trained, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    output = tmp_path / "explanations.csv"
    assert _explain(trained.files, ROOT / params.paths.example, output) == 1
    assert not output.exists()
    assert "write .json or .parquet" in caplog.text
    caplog.clear()
    missing = tmp_path / "no-such-records.json"
    output = tmp_path / "explanations.json"
    assert _explain(trained.files, missing, output) == 1
    assert not output.exists()
    assert f"{missing}: file not found" in caplog.text
