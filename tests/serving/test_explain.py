"""`/explain` in the BentoML service, through a real `bentoml serve` of the bento.

The bento and the server are the service tests' own fixtures (tests/serving/test_service.py),
on the small project copy. Not the in-process client: a second in-process app in one pytest
session would register BentoML's Prometheus metrics twice. Expected numbers come from the
pipeline's model file, loaded outside the service.
"""

from __future__ import annotations

import math
import re
import tarfile
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from _pytest.fixtures import FixtureFunctionDefinition

from mlops_template.core.explain import OTHER_FEATURES
from mlops_template.core.model import load_model
from mlops_template.core.params import load_params
from mlops_template.core.schema import TABLE
from mlops_template.serving import contract
from tests.serving import test_service as service_tests
from tests.support import Server

pytestmark = pytest.mark.service

# The service tests' fixtures (built, server and what they use), registered here too.
globals().update(
    {n: f for n, f in vars(service_tests).items() if isinstance(f, FixtureFunctionDefinition)}
)
Built = service_tests.Built
Bad = service_tests.Bad
KEY = TABLE.key
ADDITIVITY = 1e-6


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _log_odds(built: Built, records: list[dict[str, Any]]) -> np.ndarray:
    """The pipeline's model file's own log-odds (decision_function) for the records."""
    params = load_params(built.repo / "params.yaml")
    model = load_model(built.repo / params.paths.model, built.repo / params.paths.model_card)
    frame = contract.records_frame([contract.Record.model_validate(r) for r in records])
    return np.asarray(model.estimator.estimator_.decision_function(model.table.encode(frame)))


def check_answers(
    answers: list[dict[str, Any]],
    records: list[dict[str, Any]],
    predictions: list[dict[str, Any]],
    log_odds: np.ndarray,
    top_k: int,
) -> None:
    """What every /explain answer must be: /predict's numbers, exact and additive."""
    assert len(answers) == len(records)
    for answer, record, prediction, raw in zip(
        answers, records, predictions, log_odds, strict=True
    ):
        for field in (KEY, "probability", "contact", "model_version"):
            assert answer[field] == prediction[field], field  # the same as /predict, bitwise
        assert math.isclose(answer["log_odds"], raw, abs_tol=1e-9)
        contributions = answer["contributions"]
        total = answer["base_value"] + sum(c["contribution"] for c in contributions)
        assert math.isclose(total, answer["log_odds"], abs_tol=ADDITIVITY), "additivity"
        assert answer["probability"] == pytest.approx(1 / (1 + math.exp(-raw)), abs=1e-12)
        shown = [c for c in contributions if c["feature"] != OTHER_FEATURES]
        assert len(shown) == min(top_k, len(TABLE.features))
        assert len(contributions) - len(shown) == (1 if top_k < len(TABLE.features) else 0)
        sizes = [abs(c["contribution"]) for c in shown]
        assert sizes == sorted(sizes, reverse=True)
        for c in shown:
            assert c["value"] == record.get(c["feature"]), c  # the record's value, as sent
            sign = (c["contribution"] > 0) - (c["contribution"] < 0)
            assert c["direction"] == {1: "raises", -1: "lowers", 0: "none"}[sign]
            assert c["text"].startswith(f"{c['feature']} = ")


def test_served_bento_answers_the_example_request_with_additive_contributions(
    http: httpx.Client, built: Built
) -> None:
    records = service_tests.example()["records"]
    response = http.post("/explain", json={"records": records})
    assert response.status_code == 200, response.text
    predictions = http.post("/predict", json={"records": records}).json()
    top_k = load_params(built.repo / "params.yaml").explain.top_k
    check_answers(response.json(), records, predictions, _log_odds(built, records), top_k)


def test_top_k_can_be_asked_for(http: httpx.Client, built: Built) -> None:
    records = service_tests.example()["records"][:1]
    predictions = http.post("/predict", json={"records": records}).json()
    for top_k in (1, len(TABLE.features)):
        response = http.post("/explain", json={"records": records, "top_k": top_k})
        assert response.status_code == 200, response.text
        check_answers(response.json(), records, predictions, _log_odds(built, records), top_k)


def test_missing_values_are_explained_as_missing(http: httpx.Client) -> None:
    record = service_tests.one_record()
    for name in contract.OPTIONAL_FIELDS:
        record[name] = None
    response = http.post("/explain", json={"records": [record], "top_k": len(TABLE.features)})
    assert response.status_code == 200, response.text
    by_feature = {c["feature"]: c for c in response.json()[0]["contributions"]}
    for name in contract.OPTIONAL_FIELDS:
        if name in by_feature:
            assert by_feature[name]["value"] is None
            assert f"{name} = missing" in by_feature[name]["text"]


def test_openapi_documents_explain(http: httpx.Client) -> None:
    spec = http.get("/docs.json").json()
    assert "/explain" in spec["paths"]
    body = spec["paths"]["/explain"]["post"]["requestBody"]
    assert body["required"] is True


# --- bad input: the same 4xx as /predict -------------------------------------------------------


def _as_explain(case: Bad) -> Bad:
    """A bad request to /predict or /predict_one, sent to /explain: a single record's body
    becomes a one-record batch, and its error is then at ("records", 0, ...)."""

    def body() -> Any:
        sent = case.body()
        if case.route != "/predict_one" or isinstance(sent, Iterator):
            return sent
        if isinstance(sent, bytes):  # a record as raw JSON (NaN, huge numbers), or not JSON
            return b'{"records": [' + sent + b"]}"
        return {"records": [sent]}

    one = case.route == "/predict_one" and case.loc is not None
    loc = ("records", 0, *case.loc) if one and case.loc is not None else case.loc
    return Bad("/explain", body, case.status, loc, case.error_type, case.content_type)


def _explain_cases() -> dict[str, Bad]:
    cases = {
        name: _as_explain(case)
        for name, case in service_tests.BAD_INPUTS.items()
        if case.route in ("/predict", "/predict_one")
    }
    record = service_tests.one_record
    cfg = load_params().explain
    cases |= {
        "more records than explain.max_records": Bad(
            "/explain", lambda: {"records": [record()] * (cfg.max_records + 1)}, 400,
            ("records",), "too_long",
        ),
        "top_k of 0": Bad(
            "/explain", lambda: {"records": [record()], "top_k": 0}, 400, ("top_k",),
            "greater_than_equal",
        ),
        "top_k above the number of features": Bad(
            "/explain", lambda: {"records": [record()], "top_k": len(TABLE.features) + 1}, 400,
            ("top_k",), "less_than_equal",
        ),
        "top_k as text": Bad(
            "/explain", lambda: {"records": [record()], "top_k": "3"}, 400, ("top_k",),
            "int_type",
        ),
        "top_k as a boolean": Bad(
            "/explain", lambda: {"records": [record()], "top_k": True}, 400, ("top_k",),
            "int_type",
        ),
        "unknown field beside the records": Bad(
            "/explain", lambda: {"records": [record()], "why": 1}, 400, ("why",),
            "extra_forbidden",
        ),
    }  # fmt: skip
    return cases


EXPLAIN_CASES = _explain_cases()


@pytest.mark.parametrize("case", list(EXPLAIN_CASES), ids=list(EXPLAIN_CASES))
def test_bad_input_to_explain_gets_the_same_4xx(http: httpx.Client, case: str) -> None:
    bad = EXPLAIN_CASES[case]
    body = bad.body()
    if isinstance(body, bytes | Iterator):
        response = http.post(bad.route, content=body, headers={"content-type": bad.content_type})
    else:
        response = http.post(bad.route, json=body)
    assert response.status_code == bad.status, f"{case}: {response.status_code} {response.text}"
    payload = response.json()
    assert payload["error"], f"{case}: no error message"
    if bad.loc is not None:
        found = [(tuple(d["loc"]), d["type"]) for d in payload["detail"]]
        if bad.error_type is None:
            assert any(loc[: len(bad.loc)] == bad.loc for loc, _ in found), f"{case}: {found}"
        else:
            assert (bad.loc, bad.error_type) in found, f"{case}: expected {bad.loc} in {found}"
    ok = http.post("/explain", json={"records": [service_tests.one_record()]})
    assert ok.status_code == 200, ok.text


def test_the_bento_carries_no_shap_numba_or_llvmlite(built: Built) -> None:
    """The explainer is numpy over scikit-learn's trees: the image does not grow."""
    with tarfile.open(built.archive) as tar:
        handle = tar.extractfile("./env/python/requirements.txt")
        assert handle is not None
        text = handle.read().decode()
    names = {
        re.split(r"[=<>;\[ ]", line.strip(), maxsplit=1)[0].lower() for line in text.splitlines()
    }
    assert "scikit-learn" in names, "the requirements are the locked runtime set"
    assert not names & {"shap", "numba", "llvmlite"}, sorted(names & {"shap", "numba", "llvmlite"})
