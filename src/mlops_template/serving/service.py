"""The model as a BentoML service: `make serve` (port 3000), `make bento` to package it.

Endpoints (all POST, JSON):
- `/predict`: `{"records": [...]}`, 1 to MAX_BATCH_RECORDS records -> one prediction each.
- `/predict_one`: one record as the whole body -> one prediction. Requests from
  concurrent callers are merged by BentoML's adaptive batching into one model call, because
  a model call costs about the same for 1 row as for 100 rows.
- `/metadata`: model version and sha256, threshold, git commit, dvc.lock data hashes, params
  and metrics of the run that produced the model.
BentoML adds `/livez`, `/readyz`, `/metrics` (Prometheus), `/docs.json` (OpenAPI) and `/`.

BentoML declares a service when its module is imported, so the names (service, model) come
from params.yaml `project`, read once at import from the working directory: the repository
root, or the bento's `src/` where `make bento` puts the params it was built with.

Requests are validated against the contract derived from the schema (`contract.py`): any
invalid input is answered with 400 naming the field and the problem (413 for a body over
MAX_BODY_BYTES, 415 for a body that is not JSON), and the next request is served normally.

The model comes from the BentoML model store (`make bento` imports the DVC-tracked model
there, and the bento carries it). It is loaded once per worker and only after its sha256
matches the model card: a tampered file stops the worker from starting.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final

import bentoml
from _bentoml_sdk.io_models import IORootModel  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from threadpoolctl import ThreadpoolController

from mlops_template.core.errors import ModelIntegrityError
from mlops_template.core.lineage import Lineage
from mlops_template.core.model import LoadedModel, load_model
from mlops_template.core.params import load_params
from mlops_template.core.schema import TABLE
from mlops_template.serving import contract

log = logging.getLogger(__name__)

PROJECT: Final = load_params().project
# `make bento` sets this to the exact tag it imported; a bento holds one model, so "latest"
# resolves to that one when the bento is served.
MODEL_TAG_ENV: Final = "MLOPS_MODEL_TAG"
MODEL_FILE: Final = "model.joblib"
CARD_FILE: Final = "model_card.json"
LINEAGE_FILE: Final = "lineage.json"

MAX_BATCH_RECORDS: Final = 5_000  # per /predict request
MAX_BODY_BYTES: Final = 8 * 1024 * 1024  # ~1,600 bytes per record x 5,000, with headroom
# Adaptive batching of /predict_one: a model call costs ~10-20 ms whether it scores 1 row or
# 100, so callers waiting together share one call. max_latency bounds how long a request may
# wait in the queue; beyond it BentoML answers 503 (overloaded, retry), never a wrong answer.
# BentoML logs every rejected request with a traceback whose pydantic error repeats the input.
HTTP_LOGGER: Final = "bentoml._internal.server.http_app"
SINGLE_MAX_BATCH_SIZE: Final = 64
SINGLE_MAX_LATENCY_MS: Final = 1_000
# OpenMP threads per model call (scikit-learn's gradient boosting). Concurrency comes from
# batching and workers; on a small or busy host, OpenMP threads that wait for each other made
# a 1-row call 6x slower here (64 ms vs 10 ms). Raise it on a dedicated many-core host.
MODEL_THREADS_ENV: Final = "MLOPS_MODEL_THREADS"

Record = contract.Record
Prediction = contract.Prediction


def model_tag() -> str:
    return os.environ.get(MODEL_TAG_ENV, f"{PROJECT.model_name}:latest")


# --- request / response specs --------------------------------------------------------------

_RECORDS: Any = Annotated[
    list[Record],  # type: ignore[valid-type]
    Field(
        min_length=1,
        max_length=MAX_BATCH_RECORDS,
        description=f"1 to {MAX_BATCH_RECORDS:,} records.",
    ),
]
BatchRequest: type[BaseModel] = create_model(
    "BatchRequest", __config__=ConfigDict(extra="forbid"), records=(_RECORDS, ...)
)


class OneRecord(IORootModel[list[Record]]):  # type: ignore[valid-type,misc]
    """The body is one record; the batcher sees it as a list of one."""

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> OneRecord:
        record = Record.model_validate_json(json_data, **kwargs)
        one: OneRecord = cls.model_construct(root=[record])
        return one

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = Record.model_json_schema(*args, **kwargs)
        schema["root_input"] = True
        return schema


OneRecord.__root_input__ = True


class OnePrediction(IORootModel[list[Prediction]]):  # type: ignore[valid-type,misc]
    """The batched method returns a list of one per caller; the caller gets the object."""

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        (prediction,) = obj
        return Response(prediction.model_dump_json(), media_type="application/json")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return Prediction.model_json_schema(*args, **kwargs)


class Metadata(Lineage):
    """The lineage recorded at build time plus what this server is running."""

    model_tag: str = Field(description="BentoML tag of the served model.")


# --- guards --------------------------------------------------------------------------------


class RequestGuard:
    """Checks every POST before BentoML parses it.

    - Content-Type must be application/json (or absent): anything else is 415. BentoML would
      try to parse multipart or form bodies and fail with a 500.
    - The body may hold at most `max_bytes`: 413, whether or not Content-Length is sent, and
      without reading more than that into memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        media_type = headers.get(b"content-type", b"application/json").split(b";")[0]
        if media_type.strip().lower() != b"application/json":
            shown = media_type.decode("latin-1")
            await _error(
                415, f"Content-Type must be application/json, not '{shown}'", scope, receive, send
            )
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"request body larger than {self.max_bytes:,} bytes; "
            f"send at most {MAX_BATCH_RECORDS:,} records per request"
        )
        await _error(413, message, scope, receive, send)


async def _error(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"error": message}, status_code=status)(scope, receive, send)


class InvalidInputLogFilter(logging.Filter):
    """Log a rejected request as one INFO line of fields and problems, not an ERROR traceback.

    A client's bad input is not a server error, and the traceback of a pydantic error carries
    the submitted values (personal data, perhaps) into the logs; field names and messages do not.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)[:10]
            )
            record.msg = (
                f"{record.getMessage()}: rejected, {exc.error_count()} error(s): {problems}"
            )
            record.args = ()
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def _load(stored: Any) -> tuple[LoadedModel, Lineage]:
    """Load the stored model after checking its hash and that it is the model the tag names."""
    path = Path(stored.path)
    loaded = load_model(path / MODEL_FILE, path / CARD_FILE)
    version = str(stored.tag.version)
    if not loaded.sha256.startswith(version):
        raise ModelIntegrityError(
            f"{stored.tag}: model sha256 {loaded.sha256} does not start with the tag's version "
            f"{version}; the model store entry was changed. Re-run `make bento`."
        )
    lineage = Lineage.model_validate_json((path / LINEAGE_FILE).read_bytes())
    if lineage.model.sha256 != loaded.sha256:
        raise ModelIntegrityError(
            f"{stored.tag}: {LINEAGE_FILE} describes model {lineage.model.sha256}, "
            f"not the stored {loaded.sha256}. Re-run `make bento`."
        )
    return loaded, lineage


# --- the service ---------------------------------------------------------------------------


@bentoml.service(
    name=PROJECT.service_name,
    workers=1,
    traffic={"timeout": 30, "max_concurrency": 256},
)
class ModelService:
    """The probability of the positive label and the profit-maximising contact decision."""

    model_ref: ClassVar[Any] = bentoml.models.BentoModel(model_tag())

    def __init__(self) -> None:
        stored = self.model_ref  # resolved to the stored model by BentoML
        try:
            self.model, self.lineage = _load(stored)
        except ModelIntegrityError as exc:
            log.critical("refusing to serve: %s", exc)
            raise
        self.version = self.model.version
        self.tag = str(stored.tag)
        self.threads = int(os.environ.get(MODEL_THREADS_ENV, "1"))
        http_log = logging.getLogger(HTTP_LOGGER)
        if not any(isinstance(f, InvalidInputLogFilter) for f in http_log.filters):
            http_log.addFilter(InvalidInputLogFilter())
        self.thread_control = ThreadpoolController()
        log.info(
            "serving %s (sha256 %s, threshold %.4f)",
            self.tag,
            self.model.sha256,
            self.model.threshold,
        )

    def _score(self, records: list[Any], *, one_per_request: bool = False) -> list[Any]:
        frame = contract.records_frame(records)
        with self.thread_control.limit(limits=self.threads, user_api="openmp"):
            proba = self.model.probability(frame)
        contact = self.model.decide(proba)
        # Without an id column a record is keyed by its position in its own request: the
        # batched records of /predict_one each came alone.
        keys = [0] * len(frame) if one_per_request and TABLE.id is None else TABLE.keys(frame)
        key = TABLE.key
        return [
            Prediction(
                **{key: k}, probability=float(p), contact=bool(c), model_version=self.version
            )
            for k, p, c in zip(keys, proba, contact, strict=True)
        ]

    @bentoml.api(input_spec=BatchRequest)  # type: ignore[untyped-decorator]
    def predict(self, records: list[Any]) -> list[Prediction]:  # type: ignore[valid-type]
        """Score a batch of records (1 to 5,000)."""
        return self._score(records)

    @bentoml.api(  # type: ignore[untyped-decorator]
        input_spec=OneRecord,
        output_spec=OnePrediction,
        batchable=True,
        max_batch_size=SINGLE_MAX_BATCH_SIZE,
        max_latency_ms=SINGLE_MAX_LATENCY_MS,
    )
    def predict_one(self, records: list[Any]) -> list[Prediction]:  # type: ignore[valid-type]
        """Score one record (the body is the record); concurrent calls are batched."""
        return self._score(records, one_per_request=True)

    @bentoml.api  # type: ignore[untyped-decorator]
    def metadata(self) -> Metadata:
        """Model version and sha256, threshold, git commit, data hashes, params, metrics."""
        return Metadata(**self.lineage.model_dump(), model_tag=self.tag)


ModelService.add_asgi_middleware(RequestGuard, max_bytes=MAX_BODY_BYTES)  # type: ignore[attr-defined]
