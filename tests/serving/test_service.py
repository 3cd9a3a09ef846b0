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
import shutil
import subprocess
import tarfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from mlops_template.core.model import ModelCard, load_model
from mlops_template.core.params import load_params
from mlops_template.core.repo import lock_outputs
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Kind
from mlops_template.serving import contract, service
from tests.support import (
    ROOT,
    SERVE_TIMEOUT_S,
    ProjectCopy,
    Server,
    start_server,
    stop_server,
    unpack_bento,
    wait_server_ready,
)

pytestmark = pytest.mark.service

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
def client(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The service app in this process, its model store pointed at the built one."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    prom = tmp_path_factory.mktemp("prometheus")
    saved = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    BentoMLContainer.model_store.set(ModelStore(built.home / "models"))
    try:
        with TestClient(service.ModelService.to_asgi()) as test_client:
            yield test_client
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


def test_tampered_model_stops_the_server_with_a_clear_message(built: Built, tmp_path: Path) -> None:
    bento_dir = unpack_bento(built.archive, tmp_path / "bento")
    version = built.card.version
    model_name = load_params(built.repo / "params.yaml").project.model_name
    model_file = bento_dir / "models" / model_name / version / service.MODEL_FILE
    payload = bytearray(model_file.read_bytes())
    payload[-100] ^= 0x01
    model_file.write_bytes(bytes(payload))
    # BENTOML_CONTAINERIZED: do not respawn a failed worker (as in a container).
    server = start_server(bento_dir, tmp_path, BENTOML_CONTAINERIZED="true")
    try:
        code = server.process.wait(timeout=SERVE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_server(server)
        raise AssertionError(f"server kept running:\n{server.output()[-3000:]}") from None
    output = server.output()
    assert code != 0
    assert "refusing to serve" in output
    assert "does not match" in output
    assert built.card.sha256 in output
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/readyz", timeout=2)
