"""The BentoML service and its bento, end to end.

A throwaway copy of the project reproduces the pipeline on a small sample (so the tests work
from a fresh clone, without a DVC remote) and runs the real `make bento` there. Then:
- in process: every endpoint through an ASGI test client, and a table of bad inputs that
  must each get a specific 4xx naming the field, each followed by a request that still works;
- a real `bentoml serve` of the exported bento, unpacked elsewhere with an empty model store,
  on a free loopback port: predictions, metadata and adaptive batching across callers;
- a tampered model: the service refuses to start and says why.
Expected values are read from the files the pipeline wrote, never typed into the test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

with warnings.catch_warnings():  # starlette prefers httpx2 now; httpx is what the project has
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mlops_template.core import io as storage
from mlops_template.core.errors import ModelIntegrityError
from mlops_template.core.events import (
    FEEDBACK_FILE,
    PREDICTIONS_FILE,
    FeedbackEvent,
    PredictionEvent,
    log_files,
    read_feedback,
)
from mlops_template.core.model import ModelCard, load_model
from mlops_template.core.params import LOG_DIR_ENV, load_params
from mlops_template.core.repo import lock_outputs
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Kind
from mlops_template.serving import contract, service
from tests.support import (
    ROOT,
    VENV_BIN,
    ProjectCopy,
    Server,
    start_server,
    stop_server,
    unpack_bento,
    wait_server_ready,
)

pytestmark = pytest.mark.service

STOP_WITHIN_S = 30  # a server whose model fails its checks exits within this

PACKAGE = TABLE.__module__.split(".")[0]

EXAMPLE = ROOT / load_params(ROOT / "params.yaml").paths.example


@dataclass
class Built:
    """The shared small project copy and the bento `make bento` built from it."""

    project: ProjectCopy
    info: dict[str, Any]

    @property
    def repo(self) -> Path:
        return self.project.path

    @property
    def home(self) -> Path:
        """BENTOML_HOME the bento was built in."""
        return Path(self.project.env["BENTOML_HOME"])

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.project.run(*args, check=check)

    def make_bento(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.project.make("bento", check=check)

    @property
    def archive(self) -> Path:
        return self.repo / str(self.info["archive"])

    @property
    def card(self) -> ModelCard:
        return self.project.card


@pytest.fixture(scope="module")
def built(small_project: ProjectCopy) -> Built:
    small_project.make("bento")
    info = json.loads((small_project.path / "build" / "bento.json").read_text(encoding="utf-8"))
    return Built(small_project, info)


@pytest.fixture(scope="module")
def client_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the in-process service writes its prediction and feedback logs."""
    return tmp_path_factory.mktemp("client_logs")


@pytest.fixture(scope="module")
def client(
    built: Built, client_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The service app in this process, its model store pointed at the built one and its logs
    at `client_logs` (MLOPS_LOG_DIR, read when the service starts: set only for that, so the
    servers other tests start do not inherit it)."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    prom = tmp_path_factory.mktemp("prometheus")
    saved = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    BentoMLContainer.model_store.set(ModelStore(built.home / "models"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(LOG_DIR_ENV, str(client_logs))
            test_client = TestClient(service.ModelService.to_asgi()).__enter__()
        try:
            yield test_client
        finally:
            test_client.__exit__(None, None, None)
    finally:
        BentoMLContainer.model_store.reset()
        if saved is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved


def example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return data


def one_record() -> dict[str, Any]:
    record: dict[str, Any] = example()["records"][0]
    return record


def expected_probabilities(built: Built, records: list[dict[str, Any]]) -> np.ndarray:
    """What the pipeline's own model file says, loaded outside the service."""
    params = load_params(built.repo / "params.yaml")
    model = load_model(built.repo / params.paths.model, built.repo / params.paths.model_card)
    frame = contract.records_frame([contract.Record.model_validate(r) for r in records])
    return model.probability(frame)


KEY = TABLE.key


def keys(records: list[dict[str, Any]]) -> list[Any]:
    return [r[KEY] for r in records] if TABLE.id else list(range(len(records)))


# --- in process: the endpoints -------------------------------------------------------------


def test_predict_answers_every_record_with_the_pipelines_model(
    client: TestClient, built: Built
) -> None:
    records = example()["records"]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a[KEY] for a in answers] == keys(records)
    expected = expected_probabilities(built, records)
    got = np.array([a["probability"] for a in answers])
    np.testing.assert_array_equal(got, expected)  # bitwise: the same model, the same input
    threshold = built.card.threshold
    assert [a["contact"] for a in answers] == [bool(p >= threshold) for p in expected]
    assert {a["model_version"] for a in answers} == {built.card.version}
    assert {type(a["probability"]) for a in answers} == {float}


def test_predict_one_matches_the_batch_answer(client: TestClient) -> None:
    records = example()["records"]
    batch = client.post("/predict", json={"records": records}).json()
    for record, from_batch in zip(records, batch, strict=True):
        response = client.post("/predict_one", json=record)
        assert response.status_code == 200, response.text
        one = response.json()
        if TABLE.id is None:  # keyed by the position in its own request
            assert one.pop(KEY) == 0
            from_batch = {k: v for k, v in from_batch.items() if k != KEY}
        assert one == from_batch


def test_metadata_traces_the_model_to_code_data_params_and_metrics(
    client: TestClient, built: Built
) -> None:
    response = client.post("/metadata")
    assert response.status_code == 200, response.text
    meta = response.json()
    params = load_params(built.repo / "params.yaml")
    card = built.card
    assert meta["model"] == card.model_dump(mode="json")
    assert meta["model"]["sha256"] == storage.sha256_file(built.repo / params.paths.model)
    assert meta["model_tag"] == built.info["model_tag"]
    head = built.run("git", "rev-parse", "HEAD").stdout.strip()
    assert meta["git_commit"] == head
    assert meta["git_dirty"] is False
    lock_text = (built.repo / "dvc.lock").read_text(encoding="utf-8")
    assert meta["dvc_lock_sha256"] == hashlib.sha256(lock_text.encode()).hexdigest()
    assert meta["data"] == lock_outputs(yaml.safe_load(lock_text))
    assert params.paths.raw in meta["data"]
    assert meta["params"] == params.model_dump(mode="json")
    assert meta["metrics"] == storage.read_json(built.repo / params.paths.metrics)


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/docs.json"])
def test_bentoml_system_endpoints_stay_available(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:200]}"


def test_openapi_documents_the_contract_from_the_schema(client: TestClient) -> None:
    spec = client.get("/docs.json").json()
    for route in ("/predict", "/predict_one", "/metadata"):
        assert route in spec["paths"], f"{route} missing from /docs.json"
    body = spec["paths"]["/predict_one"]["post"]["requestBody"]["content"]["application/json"]
    record = body["schema"]
    assert set(record["properties"]) == {c.name for c in TABLE.input_columns}
    assert set(record["required"]) == set(contract.REQUIRED_FIELDS)
    for column in TABLE.input_columns:
        if column.categories:
            assert record["properties"][column.name]["enum"] == list(column.categories)


# --- in process: bad inputs -----------------------------------------------------------------


def _with(**changes: Any) -> dict[str, Any]:
    record = one_record()
    record.update(changes)
    return record


def _without(name: str) -> dict[str, Any]:
    record = one_record()
    del record[name]
    return record


def _raw_number(name: str, literal: str) -> bytes:
    """A record whose field is a JSON number literal Python's json would not write."""
    record = one_record()
    record[name] = "__PLACEHOLDER__"
    return json.dumps(record).replace('"__PLACEHOLDER__"', literal).encode()


def _batch(records: list[Any]) -> dict[str, Any]:
    return {"records": records}


@dataclass(frozen=True)
class Bad:
    """One bad request: where it goes, what it sends, the status and error it must get."""

    route: str
    body: Callable[[], Any]  # a JSON-able object, raw bytes, or an iterator of byte chunks
    status: int
    loc: tuple[str | int, ...] | None  # the field the error must name (None: whole body)
    error_type: str | None  # pydantic error type expected at that location
    content_type: str = "application/json"


def _first(predicate: Callable[[Any], bool]) -> Any:
    return next((c for c in TABLE.input_columns if predicate(c)), None)


def bad_inputs() -> dict[str, Bad]:
    """Every kind of bad request the schema makes possible, each with the error it must get."""
    one = "/predict_one"
    cases: dict[str, Bad] = {
        "malformed JSON": Bad("/predict", lambda: b'{"records": [', 400, (), "json_invalid"),
        "body is a list, not a record": Bad(one, lambda: [one_record()], 400, (), "model_type"),
        "unknown field (the label)": Bad(
            one, lambda: _with(**{TABLE.label.name: TABLE.label.positive}), 400,
            (TABLE.label.name,), "extra_forbidden",
        ),
        "empty batch": Bad("/predict", lambda: _batch([]), 400, ("records",), "too_short"),
        "oversized batch": Bad(
            "/predict", lambda: _batch([one_record()] * (service.MAX_BATCH_RECORDS + 1)), 400,
            ("records",), "too_long",
        ),
        "records not a list": Bad(
            "/predict", lambda: {"records": one_record()}, 400, ("records",), "list_type"
        ),
        "batch without records": Bad("/predict", dict, 400, ("records",), "missing"),
        "body over the size cap": Bad(
            "/predict", lambda: b" " * (service.MAX_BODY_BYTES + 1), 413, None, None
        ),
        "body over the cap, chunked without Content-Length": Bad(
            "/predict",
            lambda: iter([b" " * (1 << 20)] * (service.MAX_BODY_BYTES // (1 << 20) + 1)),
            413, None, None,
        ),
        "multipart body": Bad(
            one, lambda: b"--x\r\n\r\n--x--\r\n", 415, None, None,
            "multipart/form-data; boundary=x",
        ),
        "form body (curl -d without a Content-Type)": Bad(
            "/predict", lambda: b"records=1", 415, None, None, "application/x-www-form-urlencoded"
        ),
    }  # fmt: skip
    integer = _first(lambda c: c.dtype == "int64" and not c.categories and c.kind is not Kind.ID)
    if integer is not None:
        n = integer.name
        cases |= {
            "string for an integer": Bad(one, lambda: _with(**{n: "15"}), 400, (n,), "int_type"),
            "boolean for an integer": Bad(one, lambda: _with(**{n: True}), 400, (n,), "int_type"),
            "fraction for an integer": Bad(one, lambda: _with(**{n: 2.5}), 400, (n,), "int_type"),
        }
        if integer.max is not None:
            cases["huge integer"] = Bad(
                one, lambda: _raw_number(n, "1" + "0" * 40), 400, (n,), "less_than_equal"
            )
    number = _first(lambda c: c.dtype == "float64")
    if number is not None:
        f = number.name
        cases |= {
            "boolean for a number": Bad(one, lambda: _with(**{f: False}), 400, (f,), "float_type"),
            "NaN": Bad(one, lambda: _raw_number(f, "NaN"), 400, (f,), "finite_number"),
            "Infinity": Bad(one, lambda: _raw_number(f, "-Infinity"), 400, (f,), "finite_number"),
            "huge float": Bad(one, lambda: _raw_number(f, "1e400"), 400, (f,), "finite_number"),
        }
    flag = _first(lambda c: c.kind is Kind.BOOLEAN)
    if flag is not None:
        cases["string for a boolean"] = Bad(
            one, lambda: _with(**{flag.name: "yes"}), 400, (flag.name,), "bool_type"
        )
    required = _first(lambda c: not c.nullable and c.kind is not Kind.ID)
    r = required.name
    error = "literal_error" if required.categories else None
    cases |= {
        "missing required field": Bad(one, lambda: _without(r), 400, (r,), "missing"),
        "null for a required field": Bad(one, lambda: _with(**{r: None}), 400, (r,), error),
    }
    category = _first(lambda c: bool(c.categories))
    if category is not None:
        wrong: Any = "__unknown__" if category.dtype == "str" else 10**6
        cases["unknown category"] = Bad(
            one, lambda: _with(**{category.name: wrong}), 400, (category.name,), "literal_error"
        )
    high = _first(lambda c: c.max is not None and c.dtype == "int64")
    if high is not None:
        cases["above the maximum"] = Bad(
            one, lambda: _with(**{high.name: int(high.max) + 1}), 400, (high.name,),
            "less_than_equal",
        )  # fmt: skip
    low = _first(lambda c: c.min is not None and c.dtype == "int64")
    if low is not None:
        cases["below the minimum"] = Bad(
            one, lambda: _with(**{low.name: int(low.min) - 1}), 400, (low.name,),
            "greater_than_equal",
        )  # fmt: skip
    if TABLE.id is not None and TABLE.id.pattern:
        cases["id not matching the pattern"] = Bad(
            one, lambda: _with(**{KEY: "?!"}), 400, (KEY,), "string_pattern_mismatch"
        )
    first_required = contract.REQUIRED_FIELDS[-1]
    cases["one bad record in a batch"] = Bad(
        "/predict", lambda: _batch([one_record(), _with(**{first_required: {"a": 1}})]), 400,
        ("records", 1, first_required), None,
    )  # fmt: skip
    return cases | feedback_bad_inputs()


def good_feedback(**changes: Any) -> dict[str, Any]:
    """A valid /feedback body for the example's first record."""
    body = {KEY: keys([one_record()])[0], "reason": service.REASONS[0], "comment": "not churning"}
    body.update(changes)
    return body


def feedback_bad_inputs() -> dict[str, Bad]:
    """/feedback: each bad body a 400 naming the field (the key typed like the table's key)."""
    fb, max_chars = "/feedback", service.SETTINGS.feedback_max_chars
    key_is_text = TABLE.id is not None and TABLE.id.dtype == "str"
    wrong_key: Any = 12345678 if key_is_text else "12"
    without_key = {k: v for k, v in good_feedback().items() if k != KEY}
    cases = {
        "feedback: key of the wrong type": Bad(
            fb, lambda: good_feedback(**{KEY: wrong_key}), 400, (KEY,),
            "string_type" if key_is_text else "int_type",
        ),
        "feedback: boolean key": Bad(fb, lambda: good_feedback(**{KEY: True}), 400, (KEY,), None),
        "feedback: no key": Bad(fb, lambda: without_key, 400, (KEY,), "missing"),
        "feedback: unknown reason": Bad(
            fb, lambda: good_feedback(reason="__not_a_reason__"), 400, ("reason",), "literal_error"
        ),
        "feedback: no reason": Bad(
            fb, lambda: {KEY: good_feedback()[KEY]}, 400, ("reason",), "missing"
        ),
        "feedback: comment over the bound": Bad(
            fb, lambda: good_feedback(comment="x" * (max_chars + 1)), 400, ("comment",),
            "string_too_long",
        ),
        "feedback: comment not text": Bad(
            fb, lambda: good_feedback(comment=["a"]), 400, ("comment",), "string_type"
        ),
        "feedback: unknown field": Bad(
            fb, lambda: good_feedback(score=0.5), 400, ("score",), "extra_forbidden"
        ),
        "feedback: malformed request id": Bad(
            fb, lambda: good_feedback(request_id="not hex"), 400, ("request_id",),
            "string_pattern_mismatch",
        ),
        "feedback: body is a list": Bad(fb, lambda: [good_feedback()], 400, (), "model_type"),
        "feedback: malformed JSON": Bad(fb, lambda: b'{"reason": ', 400, (), "json_invalid"),
    }  # fmt: skip
    if TABLE.id is not None and TABLE.id.pattern:
        cases["feedback: key not matching the id pattern"] = Bad(
            fb, lambda: good_feedback(**{KEY: "?!"}), 400, (KEY,), "string_pattern_mismatch"
        )
    if TABLE.id is None:
        cases["feedback: negative row"] = Bad(
            fb, lambda: good_feedback(**{KEY: -1}), 400, (KEY,), "greater_than_equal"
        )
    return cases


BAD_INPUTS = bad_inputs()


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_gets_a_4xx_naming_the_field_then_service_goes_on(
    client: TestClient, case: str
) -> None:
    bad = BAD_INPUTS[case]
    body = bad.body()
    if isinstance(body, (bytes, Iterator)):
        response = client.post(bad.route, content=body, headers={"content-type": bad.content_type})
    else:
        response = client.post(bad.route, json=body)
    assert response.status_code == bad.status, f"{case}: {response.status_code} {response.text}"
    payload = response.json()
    assert payload["error"], f"{case}: no error message"
    if bad.loc is not None:
        found = [(tuple(d["loc"]), d["type"]) for d in payload["detail"]]
        locs = [loc for loc, _ in found]
        if bad.error_type is None:
            assert any(loc[: len(bad.loc)] == bad.loc for loc in locs), f"{case}: {found}"
        else:
            assert (bad.loc, bad.error_type) in found, f"{case}: expected {bad.loc} in {found}"
    # The service is still fine.
    ok = client.post("/predict_one", json=one_record())
    assert ok.status_code == 200, ok.text


def test_rejected_input_is_logged_in_one_line_without_the_values(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "very old, lives at 1 Main Street"
    field = contract.REQUIRED_FIELDS[-1]
    with caplog.at_level(logging.INFO, logger=service.HTTP_LOGGER):
        response = client.post("/predict_one", json=_with(**{field: secret}))
    assert response.status_code == 400
    records = [r for r in caplog.records if r.name == service.HTTP_LOGGER]
    assert records, "the rejected request was not logged"
    assert all(r.exc_info is None and r.levelno < logging.ERROR for r in records)
    text = "\n".join(r.getMessage() for r in records)
    assert field in text
    assert secret not in text


def test_nullable_fields_may_be_null_or_missing(client: TestClient) -> None:
    optional = list(contract.OPTIONAL_FIELDS)
    assert optional == [c.name for c in TABLE.input_columns if c.nullable]
    as_null = client.post("/predict_one", json=_with(**dict.fromkeys(optional)))
    missing = one_record()
    for name in optional:
        missing.pop(name, None)
    as_missing = client.post("/predict_one", json=missing)
    assert as_null.status_code == as_missing.status_code == 200
    assert as_null.json() == as_missing.json()


def test_largest_allowed_batch_is_served(client: TestClient, built: Built) -> None:
    params = load_params(built.repo / "params.yaml")
    test = storage.read_table(built.repo / params.paths.test)
    rows = test.loc[:, [c.name for c in TABLE.input_columns]].head(service.MAX_BATCH_RECORDS)
    records = json.loads(rows.to_json(orient="records"))
    if len(records) < service.MAX_BATCH_RECORDS:  # the small sample: repeat to the cap
        records = (records * (service.MAX_BATCH_RECORDS // len(records) + 1))[
            : service.MAX_BATCH_RECORDS
        ]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text[:500]
    assert len(response.json()) == service.MAX_BATCH_RECORDS


# --- in process: prediction logs and /feedback ---------------------------------------------

REQUEST_ID_HEADER = "x-bentoml-request-id"
LOG_WAIT_S = 30  # the writer thread is behind by milliseconds; this only bounds a failure


def logged(directory: Path, name: str = PREDICTIONS_FILE) -> list[dict[str, Any]]:
    """Every complete line of a log and its rotated files, oldest first, each checked against
    its event model (the format is strict: extra="forbid")."""
    model = PredictionEvent if name == PREDICTIONS_FILE else FeedbackEvent
    lines = []
    for path in log_files(directory, name):
        text = path.read_text(encoding="utf-8")
        lines += text[: text.rfind("\n") + 1].splitlines()  # the last one may be half written
    for line in lines:
        model.model_validate_json(line)
    return [json.loads(line) for line in lines]


def wait_logged(
    directory: Path, request_ids: list[str], per_request: int, name: str = PREDICTIONS_FILE
) -> list[dict[str, Any]]:
    """The lines of these requests, once each has `per_request` (or when the wait is over)."""
    wanted = set(request_ids)
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        mine = [e for e in logged(directory, name) if e.get("request_id") in wanted]
        if len(mine) >= per_request * len(wanted) or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


def received(record: dict[str, Any]) -> dict[str, Any]:
    """A record's fields as the service logs them: every input field, omitted ones null."""
    return contract.Record.model_validate(record).model_dump()


def assert_logged_as_answered(
    events: list[dict[str, Any]], records: list[dict[str, Any]], answers: list[dict[str, Any]],
    endpoint: str, version: str,
) -> None:  # fmt: skip
    """One champion line per answered record, in order: key, probability (bitwise: both are
    the same float's JSON), decision, model version, the input as received."""
    assert len(events) == len(answers), f"{len(events)} lines for {len(answers)} answers"
    for event, record, answer in zip(events, records, answers, strict=True):
        assert event["role"] == "champion"
        assert event["endpoint"] == endpoint
        assert event["key"] == answer[KEY]
        assert event["probability"] == answer["probability"]
        assert event["contact"] == answer["contact"]
        assert event["model_version"] == answer["model_version"] == version
        assert event["features"] == received(record)


def test_predict_logs_each_answered_record_under_the_request_id(
    client: TestClient, client_logs: Path, built: Built
) -> None:
    records = example()["records"]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    request_id = response.headers[REQUEST_ID_HEADER]
    events = wait_logged(client_logs, [request_id], len(records))
    assert_logged_as_answered(events, records, response.json(), "predict", built.card.version)
    stamps = {datetime.fromisoformat(e["ts"]) for e in events}
    assert len(stamps) == 1, "one model call, one time"
    assert stamps.pop().utcoffset() == timedelta(0), "UTC"
    # The top reasons beside each prediction: /explain's own contributions.
    top_k = load_params(built.repo / "params.yaml").service.log_reasons
    assert top_k > 0
    explained = client.post("/explain", json={"records": records, "top_k": top_k}).json()
    for event, answer in zip(events, explained, strict=True):
        logged_reasons = [(r["feature"], r["contribution"]) for r in event["reasons"]]
        shown = [(c["feature"], round(c["contribution"], 6)) for c in answer["contributions"]
                 if c["feature"] in TABLE.feature_names]  # fmt: skip
        assert logged_reasons == shown[:top_k]


def test_predict_one_logs_each_record_under_its_own_request_id(
    client: TestClient, client_logs: Path, built: Built
) -> None:
    records = example()["records"]
    responses = [client.post("/predict_one", json=r) for r in records]
    assert {r.status_code for r in responses} == {200}
    ids = [r.headers[REQUEST_ID_HEADER] for r in responses]
    assert len(set(ids)) == len(ids)
    events = wait_logged(client_logs, ids, 1)
    by_id = {e["request_id"]: e for e in events}
    assert len(by_id) == len(events) == len(ids), "one line per request"
    assert_logged_as_answered(
        [by_id[i] for i in ids], records, [r.json() for r in responses], "predict_one",
        built.card.version,
    )  # fmt: skip


def test_rejected_requests_log_no_prediction(client: TestClient, client_logs: Path) -> None:
    response = client.post("/predict", json=_batch([one_record(), _with(**{KEY: None})]))
    assert response.status_code == 400
    rejected = response.headers[REQUEST_ID_HEADER]
    after = client.post("/predict_one", json=one_record()).headers[REQUEST_ID_HEADER]
    assert wait_logged(client_logs, [after], 1), "the request after it is logged"
    # One writer, first in first out: lines of the rejected request would be there by now.
    assert not [e for e in logged(client_logs) if e["request_id"] == rejected]


def test_feedback_is_acknowledged_and_logged(
    client: TestClient, client_logs: Path, built: Built
) -> None:
    scored = client.post("/predict_one", json=one_record())
    request_id = scored.headers[REQUEST_ID_HEADER]
    longest = "é" * service.SETTINGS.feedback_max_chars  # the bound counts characters
    body = good_feedback(reason=service.REASONS[-1], comment=longest, request_id=request_id)
    response = client.post("/feedback", json=body)
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt[KEY] == body[KEY]
    assert receipt["reason"] == body["reason"]
    assert receipt["model_version"] == built.card.version
    (event,) = wait_logged(client_logs, [request_id], 1, FEEDBACK_FILE)
    assert event == {
        "ts": receipt["received_at"], "key": body[KEY], "reason": body["reason"],
        "comment": longest, "model_version": built.card.version, "request_id": request_id,
    }  # fmt: skip
    minimal = client.post("/feedback", json={KEY: body[KEY], "reason": service.REASONS[0]})
    assert minimal.status_code == 200, minimal.text
    assert read_feedback(client_logs)["reason"].tolist()[-1] == service.REASONS[0]


def test_feedback_reasons_and_bound_come_from_params(client: TestClient) -> None:
    spec = client.get("/docs.json").json()
    body = spec["paths"]["/feedback"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    props = schema["properties"]
    params = load_params(ROOT / "params.yaml").service
    assert props["reason"]["enum"] == list(params.feedback_reasons)
    assert props["comment"]["maxLength"] == params.feedback_max_chars
    assert set(schema["required"]) == {KEY, "reason"}
    assert schema["additionalProperties"] is False


# --- the bento ------------------------------------------------------------------------------


def _archive_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name.removeprefix("./"): m for m in tar.getmembers()}


def test_bento_carries_model_lineage_card_metrics_and_example(built: Built) -> None:
    card = built.card
    version = card.version
    project = load_params(built.repo / "params.yaml").project
    assert version == card.sha256[:12]
    assert built.info["tag"] == f"{project.service_name}:{version}"
    assert built.info["model_tag"] == f"{project.model_name}:{version}"
    members = _archive_members(built.archive)
    model_dir = f"models/{project.model_name}/{version}"
    package = PACKAGE
    for name in (
        f"{model_dir}/{service.MODEL_FILE}",
        f"{model_dir}/{service.CARD_FILE}",
        f"{model_dir}/{service.LINEAGE_FILE}",
        "src/MODEL_CARD.md",
        "src/params.yaml",
        "src/bento_files/metrics.json",
        "src/bento_files/lineage.json",
        "src/bento_files/example_request.json",
        f"src/{package}/serving/service.py",
        f"src/{package}/serving/contract.py",
        f"src/{package}/core/schema.py",
        "env/python/requirements.txt",
    ):
        assert name in members, f"{name} missing from {built.archive}"
    code = {n for n in members if n.startswith(f"src/{package}/") and n.endswith(".py")}
    shipped = {n.removeprefix(f"src/{package}/").split("/")[0] for n in code}
    assert shipped == {"__init__.py", "core", "serving"}, f"only core + serving: {sorted(code)}"
    assert not any("/build/" in n for n in code), "build-time code is not served"
    with tarfile.open(built.archive) as tar:

        def read(name: str) -> bytes:
            handle = tar.extractfile(f"./{name}")
            assert handle is not None
            return handle.read()

        params = load_params(built.repo / "params.yaml")
        model_bytes = read(f"{model_dir}/{service.MODEL_FILE}")
        assert hashlib.sha256(model_bytes).hexdigest() == card.sha256
        example_file = built.repo / params.paths.example
        assert read("src/bento_files/example_request.json") == example_file.read_bytes()
        metrics = json.loads(read("src/bento_files/metrics.json"))
        assert metrics == storage.read_json(built.repo / params.paths.metrics)
        model_card = read("src/MODEL_CARD.md").decode()
        assert card.sha256 in model_card
        assert f"{metrics['ml']['roc_auc']:.4f}" in model_card
        bento_yaml = yaml.safe_load(read("bento.yaml"))
    labels = bento_yaml["labels"]
    assert labels["model_sha256"] == card.sha256
    assert labels["git_commit"] == built.run("git", "rev-parse", "HEAD").stdout.strip()


def test_same_model_rebuilds_to_the_same_version(built: Built) -> None:
    before = dict(built.info)
    built.make_bento()
    after = json.loads((built.repo / "build" / "bento.json").read_text(encoding="utf-8"))
    assert after["tag"] == before["tag"]
    assert after["model_sha256"] == before["model_sha256"]


def test_bento_refuses_a_workspace_that_dvc_lock_does_not_describe(built: Built) -> None:
    params = load_params(built.repo / "params.yaml")
    metrics = built.repo / params.paths.metrics
    original = metrics.read_bytes()
    try:
        changed = json.loads(original)
        changed["ml"]["roc_auc"] = 0.999
        metrics.write_text(json.dumps(changed), encoding="utf-8")
        proc = built.make_bento(check=False)
    finally:
        metrics.write_bytes(original)
    assert proc.returncode != 0
    assert params.paths.metrics in proc.stderr + proc.stdout
    assert "dvc.lock" in proc.stderr + proc.stdout


def test_tampered_stored_model_is_refused_before_unpickling(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bentoml._internal.models import ModelStore

    shutil.copytree(built.home / "models", tmp_path / "models")
    store = ModelStore(tmp_path / "models")
    stored = store.get(built.info["model_tag"])
    model_file = Path(stored.path) / service.MODEL_FILE
    payload = bytearray(model_file.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    model_file.write_bytes(bytes(payload))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tampered model must never be unpickled")

    monkeypatch.setattr("joblib.load", refuse)
    with pytest.raises(ModelIntegrityError, match="does not match"):
        service._load(stored)


def _edit_json(path: Path, key: str, value: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data[key] = value
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _edit_store_metadata(entry: Path) -> None:
    meta = entry / "model.yaml"
    info = yaml.safe_load(meta.read_text(encoding="utf-8"))
    info["metadata"][service.LINEAGE_SHA256_KEY] = "0" * 64
    meta.write_text(yaml.safe_dump(info), encoding="utf-8")


# Everything the service trusts, each edited on its own: every edit must stop the load.
EDITS: dict[str, tuple[Callable[[Path], None], str]] = {
    "the threshold in the card": (
        lambda d: _edit_json(d / service.CARD_FILE, "threshold", 0.99),
        "threshold 0.99 differs from the model's own",
    ),
    "another field of the card": (
        lambda d: _edit_json(d / service.CARD_FILE, "n_train", 1),
        "the card was changed",
    ),
    "the lineage": (
        lambda d: _edit_json(d / service.LINEAGE_FILE, "git_commit", "0" * 40),
        "the lineage was changed",
    ),
    "the lineage hash in the store entry": (_edit_store_metadata, "the lineage was changed"),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_every_trusted_file_is_covered_by_the_hash_chain(
    built: Built, tmp_path: Path, edit: str
) -> None:
    from bentoml._internal.models import ModelStore

    shutil.copytree(built.home / "models", tmp_path / "models")
    stored = ModelStore(tmp_path / "models").get(built.info["model_tag"])
    change, message = EDITS[edit]
    change(Path(stored.path))
    stored = ModelStore(tmp_path / "models").get(built.info["model_tag"])  # re-read model.yaml
    with pytest.raises(ModelIntegrityError, match=message):
        service._load(stored)


# --- a real server --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    bento_dir = unpack_bento(built.archive, workdir / "bento")
    running = start_server(bento_dir, workdir)
    try:
        wait_server_ready(running)
        yield running
    finally:
        stop_server(running)


def test_served_bento_answers_like_the_pipeline(server: Server, built: Built) -> None:
    records = example()["records"]
    response = httpx.post(f"{server.url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    got = np.array([a["probability"] for a in response.json()])
    np.testing.assert_array_equal(got, expected_probabilities(built, records))
    meta = httpx.post(f"{server.url}/metadata", timeout=30).json()
    assert meta["model"]["sha256"] == built.card.sha256
    field = contract.REQUIRED_FIELDS[-1]
    bad = httpx.post(f"{server.url}/predict_one", json=_with(**{field: {"a": 1}}), timeout=30)
    assert bad.status_code == 400
    assert [field] in [d["loc"][:1] for d in bad.json()["detail"]]
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200, path


def _batch_histogram(metrics_text: str) -> tuple[float, float]:
    """(sum, count) of the adaptive batch size histogram of predict_one."""
    values = {"sum": 0.0, "count": 0.0}
    for line in metrics_text.splitlines():
        if line.startswith("bentoml_service_adaptive_batch_size_") and "predict_one" in line:
            name = line.split("{", 1)[0].rsplit("_", 1)[-1]
            if name in values:
                values[name] += float(line.rsplit(" ", 1)[-1])
    return values["sum"], values["count"]


def test_predict_one_batches_concurrent_callers_and_routes_answers_back(
    server: Server, built: Built
) -> None:
    params = load_params(built.repo / "params.yaml")
    test = storage.read_table(built.repo / params.paths.test)
    test = test.loc[:, [c.name for c in TABLE.input_columns]]
    records = json.loads(test.head(96).to_json(orient="records"))
    expected = expected_probabilities(built, records)
    before = _batch_histogram(httpx.get(f"{server.url}/metrics", timeout=30).text)

    with httpx.Client(
        base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=32)
    ) as http:

        def call(record: dict[str, Any]) -> dict[str, Any]:
            response = http.post("/predict_one", json=record)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(call, records))

    if TABLE.id is not None:
        assert [a[KEY] for a in answers] == keys(records)
    got = np.array([a["probability"] for a in answers])
    np.testing.assert_array_equal(got, expected)
    after = _batch_histogram(httpx.get(f"{server.url}/metrics", timeout=30).text)
    rows, calls = after[0] - before[0], after[1] - before[1]
    assert rows == len(records), f"the batcher saw {rows} rows for {len(records)} requests"
    assert calls < len(records), (
        f"{len(records)} concurrent requests took {calls} model calls: nothing was batched"
    )


def server_logs(server: Server, built: Built) -> Path:
    """Where a bento served by `start_server` logs by default: params.yaml `service.log_dir`
    under its BENTOML_HOME (BentoML makes the bento's own src/ the working directory)."""
    log_dir = load_params(built.repo / "params.yaml").service.log_dir
    return server.log.parent / "empty_bentoml_home" / log_dir


def score_concurrently(
    url: str, records: list[dict[str, Any]], workers: int = 32
) -> tuple[httpx.Response, list[httpx.Response]]:
    """/predict with all the records, and /predict_one for each from `workers` callers at once
    (so the batcher merges records of different requests into one model call)."""
    with httpx.Client(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=workers)
    ) as http:
        batch = http.post("/predict", json={"records": records})
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ones = list(pool.map(lambda r: http.post("/predict_one", json=r), records))
    assert batch.status_code == 200, batch.text
    assert {r.status_code for r in ones} == {200}, [r.text for r in ones if r.status_code != 200]
    return batch, ones


def test_served_bento_logs_what_it_answered_champion_only(server: Server, built: Built) -> None:
    params = load_params(built.repo / "params.yaml")
    test = storage.read_table(built.repo / params.paths.test)
    records = json.loads(test.loc[:, [c.name for c in TABLE.input_columns]].head(64).to_json(
        orient="records"
    ))  # fmt: skip
    batch, ones = score_concurrently(server.url, records)
    logs = server_logs(server, built)
    batch_id = batch.headers[REQUEST_ID_HEADER]
    events = wait_logged(logs, [batch_id], len(records))
    assert_logged_as_answered(events, records, batch.json(), "predict", built.card.version)
    ids = [r.headers[REQUEST_ID_HEADER] for r in ones]
    assert len(set(ids)) == len(ids), "each /predict_one caller has its own request id"
    by_id = {e["request_id"]: e for e in wait_logged(logs, ids, 1)}
    assert len(by_id) == len(ids)
    assert_logged_as_answered(
        [by_id[i] for i in ids], records, [r.json() for r in ones], "predict_one",
        built.card.version,
    )  # fmt: skip
    assert {e["role"] for e in logged(logs)} == {"champion"}, "no challenger, no other lines"


def _flip_a_byte(path: Path) -> None:
    payload = bytearray(path.read_bytes())
    payload[-100] ^= 0x01
    path.write_bytes(bytes(payload))


def _refused_to_serve(bento_dir: Path, tmp_path: Path, sha256: str) -> Server:
    """A plain `bentoml serve` of the bento (as `make serve` runs it: no BENTOML_CONTAINERIZED
    from outside) exits non-zero within STOP_WITHIN_S, naming the mismatch and `sha256`."""
    started = time.monotonic()
    server = start_server(bento_dir, tmp_path)
    try:
        code = server.process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        stop_server(server)
        raise AssertionError(
            f"server still running after {STOP_WITHIN_S} s:\n{server.output()[-3000:]}"
        ) from None
    output = server.output()
    assert time.monotonic() - started <= STOP_WITHIN_S
    assert code != 0
    assert "refusing to serve" in output
    assert "does not match" in output
    assert sha256 in output
    return server


def test_tampered_model_stops_the_server_with_a_clear_message(built: Built, tmp_path: Path) -> None:
    bento_dir = unpack_bento(built.archive, tmp_path / "bento")
    version = built.card.version
    model_name = load_params(built.repo / "params.yaml").project.model_name
    _flip_a_byte(bento_dir / "models" / model_name / version / service.MODEL_FILE)
    server = _refused_to_serve(bento_dir, tmp_path, built.card.sha256)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/readyz", timeout=2)


# --- a shadow challenger --------------------------------------------------------------------


@dataclass
class Shadow:
    """A second model trained in the copy and the bento `make bento CHALLENGER=` built with it."""

    info: dict[str, Any]
    model_file: Path
    card_file: Path

    @property
    def card(self) -> ModelCard:
        return ModelCard.read(self.card_file)

    def probabilities(self, records: list[dict[str, Any]]) -> np.ndarray:
        model = load_model(self.model_file, self.card_file)
        return model.probability(
            contract.records_frame([contract.Record.model_validate(r) for r in records])
        )


def _train_challenger(built: Built, folder: Path) -> tuple[Path, Path]:
    """The champion's recipe with another learning rate (or C): other probabilities."""
    raw = yaml.safe_load((built.repo / "params.yaml").read_text(encoding="utf-8"))
    kind = raw["model"]["kind"]
    knobs = raw["model"][kind]
    if kind == "hist_gradient_boosting":
        knobs["learning_rate"] = min(1.0, knobs["learning_rate"] * 2)
    else:
        knobs["C"] = knobs["C"] * 10
    variant = folder / "params.yaml"
    variant.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    paths = raw["paths"]
    model_file, card_file = (
        folder / Path(paths["model"]).name,
        folder / Path(paths["model_card"]).name,
    )
    built.project.python(
        "-m", "mlops_template.pipeline.train", "--params", str(variant), "--train",
        paths["train"], "--model", str(model_file), "--card", str(card_file),
    )  # fmt: skip
    return model_file, card_file


@pytest.fixture(scope="module")
def shadow(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Shadow:
    model_file, card_file = _train_challenger(built, tmp_path_factory.mktemp("challenger"))
    built.project.make(
        "bento", f"CHALLENGER={model_file}", "BENTO_INFO=build/shadow.json",
        "BENTO_ARCHIVE=build/shadow.bento",
    )  # fmt: skip
    info = json.loads((built.repo / "build" / "shadow.json").read_text(encoding="utf-8"))
    return Shadow(info, model_file, card_file)


@pytest.fixture(scope="module")
def shadow_server(
    built: Built, shadow: Shadow, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The challenger bento served with its logs moved by MLOPS_LOG_DIR (as in a container)."""
    workdir = tmp_path_factory.mktemp("serve_shadow")
    bento_dir = unpack_bento(built.repo / shadow.info["archive"], workdir / "bento")
    running = start_server(bento_dir, workdir, **{LOG_DIR_ENV: str(workdir / "logs")})
    try:
        wait_server_ready(running)
        yield running
    finally:
        stop_server(running)


def test_challenger_bento_carries_both_models_and_says_which(built: Built, shadow: Shadow) -> None:
    project = load_params(built.repo / "params.yaml").project
    champion, challenger = built.card, shadow.card
    assert challenger.sha256 != champion.sha256
    challenger_tag = f"{service.CHALLENGER_MODEL_NAME}:{challenger.version}"
    assert shadow.info["model_tag"] == built.info["model_tag"]
    assert shadow.info["challenger_tag"] == challenger_tag
    assert built.info["challenger_tag"] is None, "off by default"
    assert shadow.info["tag"] == (
        f"{project.service_name}:{champion.version}-shadow-{challenger.version}"
    )
    assert shadow.info["challenger_version"] == challenger.version
    members = _archive_members(built.repo / shadow.info["archive"])
    entry = f"models/{service.CHALLENGER_MODEL_NAME}/{challenger.version}"
    assert f"{entry}/{service.MODEL_FILE}" in members
    assert f"{entry}/{service.CARD_FILE}" in members
    assert f"models/{project.model_name}/{champion.version}/{service.MODEL_FILE}" in members
    with tarfile.open(built.repo / shadow.info["archive"]) as tar:

        def read(name: str) -> bytes:
            handle = tar.extractfile(f"./{name}")
            assert handle is not None
            return handle.read()

        assert (
            hashlib.sha256(read(f"{entry}/{service.MODEL_FILE}")).hexdigest() == challenger.sha256
        )
        tags = json.loads(read(f"src/{service.SERVING_MODELS_FILE.as_posix()}"))
        bento_yaml = yaml.safe_load(read("bento.yaml"))
        model_card = read("src/MODEL_CARD.md").decode()
    assert tags == {"champion": built.info["model_tag"], "challenger": challenger_tag}
    assert bento_yaml["labels"]["challenger_version"] == challenger.version
    assert bento_yaml["labels"]["challenger_sha256"] == challenger.sha256
    assert "Shadow challenger" in model_card
    assert challenger.version in model_card
    plain = _archive_members(built.archive)
    assert not any(n.startswith(f"models/{service.CHALLENGER_MODEL_NAME}/") for n in plain)


def test_shadow_challenger_is_logged_beside_the_champion_never_answered(
    shadow_server: Server, built: Built, shadow: Shadow
) -> None:
    params = load_params(built.repo / "params.yaml")
    test = storage.read_table(built.repo / params.paths.test)
    records = json.loads(test.loc[:, [c.name for c in TABLE.input_columns]].head(48).to_json(
        orient="records"
    ))  # fmt: skip
    champion = expected_probabilities(built, records)
    challenger = shadow.probabilities(records)
    assert not np.array_equal(champion, challenger), "the test needs a challenger that differs"
    batch, ones = score_concurrently(shadow_server.url, records)
    np.testing.assert_array_equal([a["probability"] for a in batch.json()], champion)
    np.testing.assert_array_equal([r.json()["probability"] for r in ones], champion)
    assert {a["model_version"] for a in batch.json()} == {built.card.version}
    logs = shadow_server.log.parent / "logs"  # MLOPS_LOG_DIR
    batch_id = batch.headers[REQUEST_ID_HEADER]
    ids = [r.headers[REQUEST_ID_HEADER] for r in ones]
    events = wait_logged(logs, [batch_id, *ids], 2)
    for role, version, expected in (
        ("champion", built.card.version, champion),
        ("challenger", shadow.card.version, challenger),
    ):
        mine = [e for e in events if e["role"] == role]
        assert {e["model_version"] for e in mine} == {version}
        in_batch = [e for e in mine if e["request_id"] == batch_id]
        assert [e["key"] for e in in_batch] == [a[KEY] for a in batch.json()]
        assert [e["probability"] for e in in_batch] == expected.tolist()
        threshold = (built.card if role == "champion" else shadow.card).threshold
        assert [e["contact"] for e in in_batch] == [bool(p >= threshold) for p in expected]
        by_id = {e["request_id"]: e for e in mine if e["endpoint"] == "predict_one"}
        assert [by_id[i]["probability"] for i in ids] == expected.tolist()
        assert [by_id[i]["key"] for i in ids] == [r.json()[KEY] for r in ones]
    meta = httpx.post(f"{shadow_server.url}/metadata", timeout=30).json()
    assert meta["model_tag"] == built.info["model_tag"]
    assert meta["challenger_tag"] == shadow.info["challenger_tag"]
    assert meta["challenger"] == shadow.card.model_dump(mode="json")


def test_tampered_challenger_stops_the_server_like_a_tampered_champion(
    built: Built, shadow: Shadow, tmp_path: Path
) -> None:
    bento_dir = unpack_bento(built.repo / shadow.info["archive"], tmp_path / "bento")
    entry = bento_dir / "models" / service.CHALLENGER_MODEL_NAME / shadow.card.version
    _flip_a_byte(entry / service.MODEL_FILE)
    _refused_to_serve(bento_dir, tmp_path, shadow.card.sha256)


def test_challenger_given_as_a_store_tag_or_refused_with_the_reason(built: Built) -> None:
    check = (
        "import sys; from mlops_template.core.params import load_params; "
        "from mlops_template.serving.build.bento import challenger_files; "
        "print(*challenger_files(sys.argv[1], load_params()), sep='\\n')"
    )
    tag = built.info["model_tag"]  # any model of the store: here the champion's entry
    found = built.project.python("-c", check, tag).stdout.split()
    assert found[2] == f"bentoml:{tag}"
    assert Path(found[0]).name == service.MODEL_FILE
    assert Path(found[1]).name == service.CARD_FILE
    missing = built.project.python("-c", check, "no_such_model:0123", check=False)
    assert missing.returncode != 0
    assert "CHALLENGER=no_such_model:0123" in missing.stderr
    params = load_params(built.repo / "params.yaml")
    itself = built.project.make(
        "bento", f"CHALLENGER={params.paths.model}", "BENTO_INFO=build/itself.json",
        "BENTO_ARCHIVE=build/itself.bento", check=False,
    )  # fmt: skip
    assert itself.returncode != 0
    assert "is the champion itself" in itself.stdout + itself.stderr


# --- a real server under abuse ---------------------------------------------------------------


def _raw_post(url: str, head: bytes, body: bytes = b"{}", timeout: float = 30) -> bytes:
    """A POST written by hand (headers a client library would refuse to send)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\n" + head
            + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )  # fmt: skip
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize(
    "header", [b"Content-Type: \xff\xfe/json", b"Content-Type: application/json; charset=\xff"]
)
def test_non_utf8_content_type_gets_415_and_no_traceback(server: Server, header: bytes) -> None:
    before = server.output().count("Traceback")
    reply = _raw_post(server.url, header)
    status, _, body = reply.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 415"), reply[:200]
    assert json.loads(body)["error"].startswith("Content-Type must be application/json")
    assert httpx.post(f"{server.url}/predict_one", json=one_record(), timeout=30).status_code == 200
    assert server.output().count("Traceback") == before, server.output()[-2000:]


def test_slow_senders_get_408_and_never_starve_valid_requests(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    slow = []
    for _ in range(service.MAX_CONCURRENCY + 44):  # more than the concurrency limit
        conn = socket.create_connection((host, int(port)), timeout=60)
        conn.sendall(
            b"POST /predict_one HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"partial'
        )
        slow.append(conn)
    started, statuses = time.monotonic(), []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while time.monotonic() - started < service.BODY_TIMEOUT_S + 3:
                statuses.append(http.post("/predict_one", json=one_record()).status_code)
                time.sleep(0.5)
        answers = []
        for conn in slow:
            answers.append(conn.recv(4096).split(b"\r\n", 1)[0])
        elapsed = time.monotonic() - started
    finally:
        for conn in slow:
            conn.close()
    assert set(statuses) == {200}, statuses
    assert set(answers) == {b"HTTP/1.1 408 Request Timeout"}, set(answers)
    assert elapsed < service.BODY_TIMEOUT_S + 10


def test_openapi_document_matches_the_service_under_schemathesis(
    server: Server, tmp_path: Path
) -> None:
    """Generated requests (seeded, all checks) against the real server: no failure at all."""
    proc = subprocess.run(
        [str(VENV_BIN / "schemathesis"), "run", f"{server.url}/docs.json", "--checks", "all",
         "--max-examples", "300", "--seed", "42", "--workers", "2", "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated, output[-2000:]
    assert int(generated.group(1)) >= 1000
    assert generated.group(1) == generated.group(2)
