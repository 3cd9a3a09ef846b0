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
import signal
import subprocess
import sys
import tarfile
import time
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

from conftest import ROOT, ProjectCopy
from mlops_template import contract, schema, service, storage
from mlops_template.lineage import dvc_outputs
from mlops_template.model import ModelIntegrityError, load_model
from mlops_template.params import load_params
from mlops_template.smoke import free_port

pytestmark = pytest.mark.service

EXAMPLE = ROOT / contract.EXAMPLE_REQUEST
SERVE_TIMEOUT_S = 180


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
    def card(self) -> dict[str, Any]:
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
        with TestClient(service.ChurnService.to_asgi()) as test_client:
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
    frame = contract.records_frame([contract.CustomerRecord.model_validate(r) for r in records])
    return model.churn_probability(frame)


# --- in process: the endpoints -------------------------------------------------------------


def test_predict_answers_every_record_with_the_pipelines_model(
    client: TestClient, built: Built
) -> None:
    records = example()["records"]
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["customer_id"] for a in answers] == [r["customer_id"] for r in records]
    expected = expected_probabilities(built, records)
    got = np.array([a["churn_probability"] for a in answers])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    threshold = built.card["threshold"]
    assert [a["contact"] for a in answers] == [bool(p >= threshold) for p in expected]
    assert {a["model_version"] for a in answers} == {built.card["version"]}
    assert {type(a["churn_probability"]) for a in answers} == {float}


def test_predict_one_matches_the_batch_answer(client: TestClient) -> None:
    records = example()["records"]
    batch = client.post("/predict", json={"records": records}).json()
    for record, from_batch in zip(records, batch, strict=True):
        response = client.post("/predict_one", json=record)
        assert response.status_code == 200, response.text
        assert response.json() == pytest.approx(from_batch)


def test_metadata_traces_the_model_to_code_data_params_and_metrics(
    client: TestClient, built: Built
) -> None:
    response = client.post("/metadata")
    assert response.status_code == 200, response.text
    meta = response.json()
    params = load_params(built.repo / "params.yaml")
    card = built.card
    assert meta["model"]["sha256"] == card["sha256"]
    assert meta["model"]["sha256"] == storage.sha256_file(built.repo / params.paths.model)
    assert meta["model"]["version"] == card["version"]
    assert meta["model"]["threshold"] == card["threshold"]
    assert meta["model_tag"] == built.info["model_tag"]
    head = built.run("git", "rev-parse", "HEAD").stdout.strip()
    assert meta["git_commit"] == head
    assert meta["git_dirty"] is False
    lock_text = (built.repo / "dvc.lock").read_text(encoding="utf-8")
    assert meta["dvc_lock_sha256"] == hashlib.sha256(lock_text.encode()).hexdigest()
    assert meta["data"] == dvc_outputs(yaml.safe_load(lock_text))
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
    assert set(record["properties"]) == {
        c.name for c in schema.COLUMNS if c.kind is not schema.Kind.LABEL
    }
    assert set(record["required"]) == set(contract.REQUIRED_FIELDS)
    for column in schema.COLUMNS:
        if column.categories and column.kind is schema.Kind.CATEGORICAL:
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


BAD_INPUTS: dict[str, Bad] = {
    "malformed JSON": Bad("/predict", lambda: b'{"records": [', 400, (), "json_invalid"),
    "body is a list, not a record": Bad(
        "/predict_one", lambda: [one_record()], 400, (), "model_type"
    ),
    "string for an integer": Bad(
        "/predict_one", lambda: _with(tenure_months="15"), 400, ("tenure_months",), "int_type"
    ),
    "boolean for an integer": Bad(
        "/predict_one", lambda: _with(age=True), 400, ("age",), "int_type"
    ),
    "boolean for a number": Bad(
        "/predict_one",
        lambda: _with(monthly_charges=False),
        400,
        ("monthly_charges",),
        "float_type",
    ),
    "fraction for an integer": Bad(
        "/predict_one", lambda: _with(support_calls=2.5), 400, ("support_calls",), "int_type"
    ),
    "string for a boolean": Bad(
        "/predict_one",
        lambda: _with(paperless_billing="yes"),
        400,
        ("paperless_billing",),
        "bool_type",
    ),
    "missing required field": Bad(
        "/predict_one", lambda: _without("contract"), 400, ("contract",), "missing"
    ),
    "null for a required field": Bad(
        "/predict_one", lambda: _with(region=None), 400, ("region",), "literal_error"
    ),
    "unknown field (the label)": Bad(
        "/predict_one", lambda: _with(churned=1), 400, ("churned",), "extra_forbidden"
    ),
    "unknown category": Bad(
        "/predict_one",
        lambda: _with(internet_service="satellite"),
        400,
        ("internet_service",),
        "literal_error",
    ),
    "above the maximum": Bad(
        "/predict_one", lambda: _with(age=150), 400, ("age",), "less_than_equal"
    ),
    "below the minimum": Bad(
        "/predict_one",
        lambda: _with(num_services=-1),
        400,
        ("num_services",),
        "greater_than_equal",
    ),
    "NaN": Bad(
        "/predict_one",
        lambda: _raw_number("monthly_charges", "NaN"),
        400,
        ("monthly_charges",),
        "finite_number",
    ),
    "Infinity": Bad(
        "/predict_one",
        lambda: _raw_number("total_charges", "-Infinity"),
        400,
        ("total_charges",),
        "finite_number",
    ),
    "huge float": Bad(
        "/predict_one",
        lambda: _raw_number("satisfaction_score", "1e400"),
        400,
        ("satisfaction_score",),
        "finite_number",
    ),
    "huge integer": Bad(
        "/predict_one",
        lambda: _raw_number("tenure_months", "1" + "0" * 40),
        400,
        ("tenure_months",),
        "less_than_equal",
    ),
    "id not matching the pattern": Bad(
        "/predict_one",
        lambda: _with(customer_id="12345"),
        400,
        ("customer_id",),
        "string_pattern_mismatch",
    ),
    "empty batch": Bad("/predict", lambda: _batch([]), 400, ("records",), "too_short"),
    "oversized batch": Bad(
        "/predict",
        lambda: _batch([one_record()] * (service.MAX_BATCH_RECORDS + 1)),
        400,
        ("records",),
        "too_long",
    ),
    "records not a list": Bad(
        "/predict", lambda: {"records": one_record()}, 400, ("records",), "list_type"
    ),
    "batch without records": Bad("/predict", dict, 400, ("records",), "missing"),
    "one bad record in a batch": Bad(
        "/predict",
        lambda: _batch([one_record(), _with(age="old")]),
        400,
        ("records", 1, "age"),
        "int_type",
    ),
    "body over the size cap": Bad(
        "/predict", lambda: b" " * (service.MAX_BODY_BYTES + 1), 413, None, None
    ),
    "body over the cap, chunked without Content-Length": Bad(
        "/predict",
        lambda: iter([b" " * (1 << 20)] * (service.MAX_BODY_BYTES // (1 << 20) + 1)),
        413,
        None,
        None,
    ),
    "multipart body": Bad(
        "/predict_one",
        lambda: b"--x\r\n\r\n--x--\r\n",
        415,
        None,
        None,
        "multipart/form-data; boundary=x",
    ),
    "form body (curl -d without a Content-Type)": Bad(
        "/predict", lambda: b"records=1", 415, None, None, "application/x-www-form-urlencoded"
    ),
}


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
        assert (bad.loc, bad.error_type) in found, f"{case}: expected {bad.loc} in {found}"
    # The service is still fine.
    ok = client.post("/predict_one", json=one_record())
    assert ok.status_code == 200, ok.text


def test_rejected_input_is_logged_in_one_line_without_the_values(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "very old, lives at 1 Main Street"
    with caplog.at_level(logging.INFO, logger=service.HTTP_LOGGER):
        response = client.post("/predict_one", json=_with(age=secret))
    assert response.status_code == 400
    records = [r for r in caplog.records if r.name == service.HTTP_LOGGER]
    assert records, "the rejected request was not logged"
    assert all(r.exc_info is None and r.levelno < logging.ERROR for r in records)
    text = "\n".join(r.getMessage() for r in records)
    assert "age" in text
    assert secret not in text


def test_nullable_fields_may_be_null_or_missing(client: TestClient) -> None:
    optional = [c.name for c in schema.COLUMNS if c.nullable]
    assert optional, "the schema has nullable columns"
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
    rows = test.drop(columns=[schema.LABEL]).head(service.MAX_BATCH_RECORDS)
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
    version = card["version"]
    assert version == card["sha256"][:12]
    assert built.info["tag"] == f"{service.SERVICE_NAME}:{version}"
    assert built.info["model_tag"] == f"{service.MODEL_NAME}:{version}"
    members = _archive_members(built.archive)
    model_dir = f"models/{service.MODEL_NAME}/{version}"
    for name in (
        f"{model_dir}/{service.MODEL_FILE}",
        f"{model_dir}/{service.CARD_FILE}",
        f"{model_dir}/{service.LINEAGE_FILE}",
        "src/MODEL_CARD.md",
        "src/bento_files/metrics.json",
        "src/bento_files/params.yaml",
        "src/bento_files/lineage.json",
        "src/bento_files/example_request.json",
        "src/mlops_template/service.py",
        "src/mlops_template/contract.py",
        "src/mlops_template/schema.py",
        "env/python/requirements.txt",
    ):
        assert name in members, f"{name} missing from {built.archive}"
    with tarfile.open(built.archive) as tar:

        def read(name: str) -> bytes:
            handle = tar.extractfile(f"./{name}")
            assert handle is not None
            return handle.read()

        params = load_params(built.repo / "params.yaml")
        model_bytes = read(f"{model_dir}/{service.MODEL_FILE}")
        assert hashlib.sha256(model_bytes).hexdigest() == card["sha256"]
        assert read("src/bento_files/example_request.json") == EXAMPLE.read_bytes()
        metrics = json.loads(read("src/bento_files/metrics.json"))
        assert metrics == storage.read_json(built.repo / params.paths.metrics)
        model_card = read("src/MODEL_CARD.md").decode()
        assert card["sha256"] in model_card
        assert f"{metrics['ml']['roc_auc']:.4f}" in model_card
        bento_yaml = yaml.safe_load(read("bento.yaml"))
    labels = bento_yaml["labels"]
    assert labels["model_sha256"] == card["sha256"]
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


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _unpack(archive: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def _start(bento_dir: Path, workdir: Path, **env: str) -> Server:
    """`bentoml serve` an unpacked bento with an empty BENTOML_HOME, on a free loopback port."""
    port = free_port()
    log = workdir / "serve.log"
    full_env = {
        **os.environ,
        "BENTOML_HOME": str(workdir / "empty_bentoml_home"),
        "BENTOML_DO_NOT_TRACK": "True",
        **env,
    }
    full_env.pop("PYTHONPATH", None)
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                str(bento_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"bentoml serve exited early:\n{server.output()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready after {SERVE_TIMEOUT_S} s:\n{server.output()[-3000:]}")


@pytest.fixture(scope="module")
def server(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    bento_dir = _unpack(built.archive, workdir / "bento")
    running = _start(bento_dir, workdir)
    try:
        _wait_ready(running)
        yield running
    finally:
        _stop(running)


def test_served_bento_answers_like_the_pipeline(server: Server, built: Built) -> None:
    records = example()["records"]
    response = httpx.post(f"{server.url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 200, response.text
    got = np.array([a["churn_probability"] for a in response.json()])
    np.testing.assert_allclose(got, expected_probabilities(built, records), rtol=0, atol=1e-12)
    meta = httpx.post(f"{server.url}/metadata", timeout=30).json()
    assert meta["model"]["sha256"] == built.card["sha256"]
    bad = httpx.post(f"{server.url}/predict_one", json=_with(contract="weekly"), timeout=30)
    assert bad.status_code == 400
    assert ["contract"] in [d["loc"] for d in bad.json()["detail"]]
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
    test = storage.read_table(built.repo / params.paths.test).drop(columns=[schema.LABEL])
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

    assert [a["customer_id"] for a in answers] == [r["customer_id"] for r in records]
    got = np.array([a["churn_probability"] for a in answers])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    after = _batch_histogram(httpx.get(f"{server.url}/metrics", timeout=30).text)
    rows, calls = after[0] - before[0], after[1] - before[1]
    assert rows == len(records), f"the batcher saw {rows} rows for {len(records)} requests"
    assert calls < len(records), (
        f"{len(records)} concurrent requests took {calls} model calls: nothing was batched"
    )


def test_tampered_model_stops_the_server_with_a_clear_message(built: Built, tmp_path: Path) -> None:
    bento_dir = _unpack(built.archive, tmp_path / "bento")
    version = built.card["version"]
    model_file = bento_dir / "models" / service.MODEL_NAME / version / service.MODEL_FILE
    payload = bytearray(model_file.read_bytes())
    payload[-100] ^= 0x01
    model_file.write_bytes(bytes(payload))
    # BENTOML_CONTAINERIZED: do not respawn a failed worker (as in a container).
    server = _start(bento_dir, tmp_path, BENTOML_CONTAINERIZED="true")
    try:
        code = server.process.wait(timeout=SERVE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop(server)
        raise AssertionError(f"server kept running:\n{server.output()[-3000:]}") from None
    output = server.output()
    assert code != 0
    assert "refusing to serve" in output
    assert "does not match" in output
    assert built.card["sha256"] in output
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/readyz", timeout=2)
