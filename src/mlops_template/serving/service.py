"""The model as a BentoML service: `make serve` (port 3000), `make bento` to package it.

Endpoints (all POST, JSON):
- `/predict`: `{"records": [...]}`, 1 to MAX_BATCH_RECORDS records -> one prediction each.
- `/predict_one`: one record as the whole body -> one prediction. Requests from
  concurrent callers are merged by BentoML's adaptive batching into one model call, because
  a model call costs about the same for 1 row as for 100 rows.
- `/explain`: `{"records": [...], "top_k": k}`, 1 to params `explain.max_records` records ->
  each one's prediction and the top k feature contributions to its log-odds, adding up to
  it exactly (`serving/explain.py`, `core/explain.py`).
- `/feedback`: a business user flags a scored record as wrong or not as expected: its key,
  a reason code from params.yaml `service.feedback_reasons`, a bounded comment.
- `/metadata`: model version and sha256, threshold, git commit, dvc.lock data hashes, params
  and metrics of the run that produced the model; the shadow challenger, if any.
BentoML adds `/livez`, `/readyz`, `/metrics` (Prometheus), `/docs.json` (OpenAPI) and `/`.

BentoML declares a service when its module is imported, so the names (service, model) come
from params.yaml `project`, read once at import from the working directory: the repository
root, or the bento's `src/` where `make bento` puts the params it was built with.

Requests are validated against the contract derived from the schema (`contract.py`): any
invalid input is answered with 400 naming the field and the problem, and the next request is
served normally. Before that, `guard.RequestGuard` answers 415 (not UTF-8 JSON), 413 (a body
over MAX_BODY_BYTES), 408 (a body not complete within BODY_TIMEOUT_S) and 429 (more than
MAX_CONCURRENCY requests at once, counted once their body has arrived).

The model comes from the BentoML model store (`make bento` imports the DVC-tracked model
there, and the bento carries it). It is loaded once per worker, and only when every file it
trusts checks out against the hash recorded one step up: the tag's version against the model
file, the model file against its card, the card against the lineage, the lineage against the
model store entry, the card's threshold against the model's own. Any mismatch stops the
worker, and with it the server (see BENTOML_CONTAINERIZED below).

A bento may also carry a **shadow challenger** (`make bento CHALLENGER=...`): a second model,
stored as `<project>_challenger:<version>` and checked the same way (tag version -> card ->
model file, the card against the hash recorded in its store entry). It scores every record in
the same call as the champion; its answers are logged, never returned. Which models a bento
serves travels in `bento_files/serving_models.json` (environment variables set at build time
do not reach `bentoml serve`), so neither is found by a `:latest` that could mean the other.

Every scored record is logged (`logbook.py`): one `core.events.PredictionEvent` line per
record and model, with the request's id (the `X-BentoML-Request-ID` answer header), written by
a background thread to size-rotated JSON lines files under params.yaml `service.log_dir`.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal

import bentoml
from _bentoml_sdk.io_models import IORootModel  # type: ignore[import-untyped]
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)
from starlette.responses import Response
from threadpoolctl import ThreadpoolController

from mlops_template.core import io as files
from mlops_template.core.errors import InputError, ModelIntegrityError
from mlops_template.core.events import FeedbackEvent, utc_now
from mlops_template.core.explain import build_explainer, explain_rows
from mlops_template.core.lineage import Lineage
from mlops_template.core.model import CARD_FILE, MODEL_FILE, LoadedModel, ModelCard, load_model
from mlops_template.core.params import load_params
from mlops_template.core.schema import TABLE
from mlops_template.serving import contract
from mlops_template.serving import explain as explaining
from mlops_template.serving.guard import RequestGuard
from mlops_template.serving.logbook import Logbook, PredictionBatch
from mlops_template.serving.openapi import OpenAPIPatch, oas30_nullable

log = logging.getLogger(__name__)

_PARAMS: Final = load_params()
PROJECT: Final = _PARAMS.project
ExplainRequest: Final = explaining.build_request_model(_PARAMS.explain)  # /explain's body
SETTINGS: Final = _PARAMS.service  # params.yaml `service`: logs and /feedback
# Without this, `bentoml serve` respawns a worker that fails at start-up every ~10 s forever,
# behind a port that never becomes ready. With it (as in a container), a worker that cannot
# start (a model that fails its checks) ends the server with exit code 1 and the reason, and
# an orchestrator restarts it. Set before BentoML's arbiter reads it: at import.
os.environ.setdefault("BENTOML_CONTAINERIZED", "true")
# Which models to serve: `make bento` writes their exact tags into SERVING_MODELS_FILE, which
# the bento carries (relative to the bento's src/, BentoML's working directory at import), and
# sets the environment variables while `bentoml build` imports this module. An environment
# variable wins over the file (MLOPS_CHALLENGER_TAG="" serves a bento's champion alone); with
# neither, the champion is the newest `<project>_model` in the store and there is no challenger.
MODEL_TAG_ENV: Final = "MLOPS_MODEL_TAG"
CHALLENGER_TAG_ENV: Final = "MLOPS_CHALLENGER_TAG"
SERVING_MODELS_FILE: Final = Path("bento_files") / "serving_models.json"
CHALLENGER_MODEL_NAME: Final = f"{PROJECT.name}_challenger"  # its own name: no `:latest` mix-up
CARD_SHA256_KEY: Final = "card_sha256"  # in a challenger's store entry metadata
LOG_PREDICTIONS_ENV: Final = "MLOPS_LOG_PREDICTIONS"  # "false" turns prediction logs off
LINEAGE_FILE: Final = "lineage.json"

MAX_BATCH_RECORDS: Final = 5_000  # per /predict request
MAX_BODY_BYTES: Final = 8 * 1024 * 1024  # ~1,600 bytes per record x 5,000, with headroom
BODY_TIMEOUT_S: Final = 15.0  # 8 MiB in 15 s is ~4.5 Mbit/s; well within the 30 s timeout
MAX_CONCURRENCY: Final = 256  # requests processed at once per worker, bodies complete
LINEAGE_SHA256_KEY: Final = "lineage_sha256"  # in the model store entry's metadata
# Adaptive batching of /predict_one: a model call costs ~10-20 ms whether it scores 1 row or
# 100, so callers waiting together share one call. max_latency bounds how long a request may
# wait in the queue; beyond it BentoML answers 503 (overloaded, retry), never a wrong answer.
# BentoML logs every rejected request with a traceback whose pydantic error repeats the input.
HTTP_LOGGER: Final = "bentoml._internal.server.http_app"
SINGLE_MAX_BATCH_SIZE: Final = 64
SINGLE_MAX_LATENCY_MS: Final = 1_000
# OpenMP threads per model call (scikit-learn's gradient boosting), and BLAS threads (the
# explanations' numpy): a positive integer, 1 when unset. Concurrency comes from batching and
# workers; on a small or busy host, OpenMP threads that wait for each other made a 1-row call
# 6x slower here (64 ms vs 10 ms). Raise it on a dedicated many-core host.
MODEL_THREADS_ENV: Final = "MLOPS_MODEL_THREADS"

Record = contract.Record
Prediction = contract.Prediction


def _saved_tags() -> dict[str, Any]:
    if not SERVING_MODELS_FILE.is_file():
        return {}
    saved = files.read_json(SERVING_MODELS_FILE)  # names the file when it is not JSON
    if not isinstance(saved, dict) or not all(isinstance(v, str | None) for v in saved.values()):
        raise InputError(
            f"{SERVING_MODELS_FILE}: expected an object of model tags "
            '({"champion": "<name>:<version>", "challenger": ... or null}); re-run `make bento`'
        )
    return saved


def model_tag() -> str:
    return (
        os.environ.get(MODEL_TAG_ENV)
        or _saved_tags().get("champion")
        or f"{PROJECT.model_name}:latest"
    )


def challenger_tag() -> str | None:
    tag: str | None = os.environ.get(CHALLENGER_TAG_ENV, _saved_tags().get("challenger"))
    return tag or None


CHALLENGER_TAG: Final = challenger_tag()


def log_predictions() -> bool:
    """params.yaml `service.log_predictions`, unless MLOPS_LOG_PREDICTIONS says otherwise."""
    raw = os.environ.get(LOG_PREDICTIONS_ENV, "").strip().lower()
    if not raw:
        return SETTINGS.log_predictions
    if raw not in ("true", "1", "false", "0"):
        raise ValueError(f"{LOG_PREDICTIONS_ENV}={raw!r}: expected true or false")
    return raw in ("true", "1")


def model_threads() -> int:
    """MLOPS_MODEL_THREADS: a positive integer, 1 when unset."""
    raw = os.environ.get(MODEL_THREADS_ENV, "").strip()
    if not raw:
        return 1
    if not raw.isdecimal() or int(raw) < 1:
        raise ValueError(
            f"{MODEL_THREADS_ENV}={raw!r}: expected a positive integer (threads per model call)"
        )
    return int(raw)


class ModelThreads:
    """Thread pools of the model's native code, limited to `n` threads once, never restored.

    BLAS pools (OpenBLAS) are process-wide: limited once, when the service starts. OpenMP's
    thread count (libgomp, scikit-learn's gradient boosting) belongs to the calling thread: each
    thread sets it before its first model call (`in_this_thread`, a thread-local check
    afterwards). Limits entered and restored around each call, from several request threads at
    once, race: a thread's restore undoes another's limit mid-call."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._controller = ThreadpoolController()
        self._controller.limit(limits=n, user_api="blas")
        self._local = threading.local()
        self.in_this_thread()

    def in_this_thread(self) -> None:
        if not getattr(self._local, "limited", False):
            self._controller.limit(limits=self.n, user_api="openmp")
            self._local.limited = True


def request_id() -> str:
    """The current request's id as BentoML sends it back (`X-BentoML-Request-ID`: the span id,
    16 hex digits), or a new random id outside a traced request."""
    from bentoml._internal.context import trace_context

    current = trace_context.request_id
    return format(current, "016x") if current is not None else uuid.uuid4().hex


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


class ReceivedRecord(Record):  # type: ignore[valid-type,misc]
    """A /predict_one record that remembers its request's id: the batcher merges records of
    many requests into one call, which runs in the first request's context."""

    model_config = ConfigDict(title="Record")
    _request_id: str = PrivateAttr(default="")


class OneRecord(IORootModel[list[Record]]):  # type: ignore[valid-type,misc]
    """The body is one record; the batcher sees it as a list of one."""

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> OneRecord:
        record = ReceivedRecord.model_validate_json(json_data, **kwargs)
        record._request_id = request_id()  # parsed in the request's own context
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

    model_config = ConfigDict(json_schema_extra=oas30_nullable)

    model_tag: str = Field(description="BentoML tag of the served model.")
    challenger_tag: str | None = Field(
        default=None, description="BentoML tag of the shadow challenger (logged, never returned)."
    )
    challenger: ModelCard | None = Field(default=None, description="The challenger's card.")


# --- /feedback -----------------------------------------------------------------------------


def _key_field() -> tuple[Any, Any]:
    """The feedback's key, typed like the key of a prediction: the id column's own field of
    the record contract, or the record's row in its request (tables without an id)."""
    if TABLE.id is not None:
        info = Record.model_fields[TABLE.key]
        return info.annotation, info
    row = Annotated[StrictInt, Field(ge=0, lt=MAX_BATCH_RECORDS)]
    return row, Field(description="The record's position in its request (the table has no id).")


REASONS: Final = SETTINGS.feedback_reasons
FeedbackRequest: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "FeedbackRequest",
    __config__=ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=oas30_nullable
    ),
    __doc__="A scored record flagged as wrong or not meeting business expectations.",
    **{
        TABLE.key: _key_field(),
        "reason": (
            Literal[REASONS],
            Field(description=f"Why: one of {', '.join(REASONS)} (params.yaml service)."),
        ),
        "comment": (
            Annotated[StrictStr, Field(max_length=SETTINGS.feedback_max_chars)],
            Field(
                default="",
                description=f"Free text, at most {SETTINGS.feedback_max_chars:,} characters.",
            ),
        ),
        "request_id": (
            Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{16,32}$")] | None,
            Field(default=None, description="The X-BentoML-Request-ID of the scoring answer."),
        ),
    },
)
FeedbackReceipt: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "FeedbackReceipt",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="The flag, as it was logged.",
    **{
        TABLE.key: (FeedbackRequest.model_fields[TABLE.key].annotation, ...),
        "reason": (str, ...),
        "model_version": (str, Field(description="The champion serving when it was flagged.")),
        "received_at": (AwareDatetime, Field(description="When the service received it (UTC).")),
    },
)


# --- guards --------------------------------------------------------------------------------


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


def _load_entry(stored: Any) -> LoadedModel:
    """The entry's model: the tag's version must begin its card's sha256, and `load_model`
    checks the model file against the card (before unpickling) and the card's threshold
    against the model's own."""
    path = Path(stored.path)
    version = str(stored.tag.version)
    card = ModelCard.read(path / CARD_FILE)
    if not card.sha256.startswith(version):
        raise ModelIntegrityError(
            f"{stored.tag}: model sha256 {card.sha256} does not start with the tag's version "
            f"{version}; the model store entry was changed. Re-run `make bento`."
        )
    return load_model(path / MODEL_FILE, path / CARD_FILE)


def _check_recorded(stored: Any, name: str, key: str, what: str) -> Path:
    """The entry's file `name` has the sha256 `make bento` recorded under `key` in the entry's
    metadata when it imported it; its path."""
    path = Path(stored.path) / name
    recorded = (stored.info.metadata or {}).get(key)
    actual = files.sha256_file(path)
    if recorded != actual:
        raise ModelIntegrityError(
            f"{stored.tag}: {name} has sha256 {actual}, but the model store entry recorded "
            f"{recorded}; {what} was changed. Re-run `make bento`."
        )
    return path


def _load_challenger(stored: Any) -> LoadedModel:
    """A challenger entry holds model + card (no lineage of its own): the card must have the
    sha256 recorded in the entry's metadata when `make bento` imported it, then as above."""
    _check_recorded(stored, CARD_FILE, CARD_SHA256_KEY, "the challenger's card")
    return _load_entry(stored)


def _load(stored: Any) -> tuple[LoadedModel, Lineage]:
    """Load the stored model after checking every file of the entry against the next hash up:
    tag version -> card -> model file (and its card's threshold, in `load_model`) -> lineage
    -> the lineage hash recorded in the model store entry when `make bento` imported it."""
    path = Path(stored.path)
    loaded = _load_entry(stored)
    lineage_file = _check_recorded(stored, LINEAGE_FILE, LINEAGE_SHA256_KEY, "the lineage")
    lineage = Lineage.model_validate_json(lineage_file.read_bytes())
    card_sha256 = files.sha256_file(path / CARD_FILE)
    if card_sha256 != lineage.card_sha256 or ModelCard.read(path / CARD_FILE) != lineage.model:
        raise ModelIntegrityError(
            f"{stored.tag}: {CARD_FILE} (sha256 {card_sha256}) is not the card {LINEAGE_FILE} "
            f"records ({lineage.card_sha256}); the card was changed. Re-run `make bento`."
        )
    return loaded, lineage


# --- the service ---------------------------------------------------------------------------


@bentoml.service(
    name=PROJECT.service_name,
    workers=1,
    # No BentoML max_concurrency: it counts a request from its first byte, so slow senders
    # could hold every slot. RequestGuard limits requests whose body has arrived instead.
    traffic={"timeout": 30},
    # The access log decodes the request's Content-Type as UTF-8 and crashes on other bytes
    # (RequestGuard answers those with 415); it logs everything else.
    logging={"access": {"request_content_type": False}},
)
class ModelService:
    """The probability of the positive label and the profit-maximising contact decision."""

    model_ref: ClassVar[Any] = bentoml.models.BentoModel(model_tag())
    if CHALLENGER_TAG:  # declared only when named: only then does the bento carry it
        challenger_ref: ClassVar[Any] = bentoml.models.BentoModel(CHALLENGER_TAG)

    def __init__(self) -> None:
        stored = self.model_ref  # resolved to the stored model by BentoML
        shadow = getattr(self, "challenger_ref", None)
        try:
            self.model, self.lineage = _load(stored)
            self.challenger = _load_challenger(shadow) if shadow is not None else None
        except ModelIntegrityError as exc:
            log.critical("refusing to serve: %s", exc)
            raise
        self.version = self.model.version
        self.tag = str(stored.tag)
        self.challenger_tag = str(shadow.tag) if shadow is not None else None
        self.threads = ModelThreads(model_threads())
        http_log = logging.getLogger(HTTP_LOGGER)
        if not any(isinstance(f, InvalidInputLogFilter) for f in http_log.filters):
            http_log.addFilter(InvalidInputLogFilter())
        build_explainer(self.model)  # /explain's, built once (cached with the model)
        # At most `log_queue_max` lines wait for the writer thread (a /predict call brings up
        # to MAX_BATCH_RECORDS per model); over half of it, lines are written without reasons.
        self.logbook = Logbook(
            SETTINGS.log_path(),
            max_bytes=int(SETTINGS.log_max_mb * 2**20),
            backups=SETTINGS.log_backups,
            queue_max=SETTINGS.log_queue_max,
            log_predictions=log_predictions(),
            reasons_cpu=SETTINGS.log_reasons_cpu,
        )
        self.logbook.start()
        self._challenger_failed = False
        log.info(
            "serving %s (sha256 %s, threshold %.4f)%s; logs in %s (predictions: %s)",
            self.tag,
            self.model.sha256,
            self.model.threshold,
            f", shadow challenger {self.challenger_tag}" if self.challenger else "",
            self.logbook.directory,
            "on" if self.logbook.log_predictions else "off",
        )

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def close_logs(self) -> None:
        """Write what is still queued and close the log files."""
        self.logbook.stop()

    def _shadow(self, rows: list[Any]) -> Any:
        """The challenger's probabilities, or None: a failing challenger never fails a request."""
        if self.challenger is None:
            return None
        try:
            return self.challenger.probability_of_rows(rows)
        except Exception:  # the shadow must never hurt the champion's answer
            if not self._challenger_failed:
                self._challenger_failed = True
                log.exception(
                    "shadow challenger %s failed; answering with the champion", self.challenger_tag
                )
            return None

    def _reasons(self, rows: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        """The top reasons of each record, for the prediction log (run by the writer thread)."""
        self.threads.in_this_thread()
        explained = explain_rows(self.model, rows, _PARAMS.service.log_reasons)
        return [
            [
                {"feature": c.feature, "value": c.value, "contribution": round(c.contribution, 6)}
                for c in e.contributions
                if c.value is not None or c.feature in TABLE.feature_names
            ]
            for e in explained
        ]

    def _score(self, records: list[Any], endpoint: str, request_ids: str | list[str]) -> list[Any]:
        rows = [r.__dict__ for r in records]  # validated fields, without copying them
        self.threads.in_this_thread()
        proba = self.model.probability_of_rows(rows)
        shadow = self._shadow(rows)
        contact = self.model.decide(proba)
        # Without an id column a record is keyed by its position in its own request: the
        # batched records of /predict_one each came alone.
        key = TABLE.key
        if TABLE.id is not None:
            keys = [row[key] for row in rows]
        else:
            keys = [0] * len(rows) if endpoint == "predict_one" else list(range(len(rows)))
        answers = [
            Prediction(
                **{key: k}, probability=float(p), contact=bool(c), model_version=self.version
            )
            for k, p, c in zip(keys, proba, contact, strict=True)
        ]
        if self.logbook.log_predictions:
            ts = utc_now()
            batch = PredictionBatch(
                endpoint, ts, self.version, "champion", request_ids, keys, rows, proba, contact,
                reasons_of=self._reasons if _PARAMS.service.log_reasons else None,
            )  # fmt: skip
            batches = [batch]
            if shadow is not None and self.challenger is not None:
                batches.append(
                    PredictionBatch(
                        endpoint, ts, self.challenger.version, "challenger", request_ids, keys,
                        rows, shadow, self.challenger.decide(shadow),
                    )
                )  # fmt: skip
            self.logbook.predictions(*batches)
        return answers

    @bentoml.api(input_spec=BatchRequest)  # type: ignore[untyped-decorator]
    def predict(self, records: list[Any]) -> list[Prediction]:  # type: ignore[valid-type]
        """Score a batch of records (1 to 5,000)."""
        return self._score(records, "predict", request_id())

    @bentoml.api(  # type: ignore[untyped-decorator]
        input_spec=OneRecord,
        output_spec=OnePrediction,
        batchable=True,
        max_batch_size=SINGLE_MAX_BATCH_SIZE,
        max_latency_ms=SINGLE_MAX_LATENCY_MS,
    )
    def predict_one(self, records: list[Any]) -> list[Prediction]:  # type: ignore[valid-type]
        """Score one record (the body is the record); concurrent calls are batched."""
        ids = [r._request_id if isinstance(r, ReceivedRecord) else request_id() for r in records]
        return self._score(records, "predict_one", ids)

    @bentoml.api(input_spec=ExplainRequest)  # type: ignore[untyped-decorator]
    def explain(self, records: list[Any], top_k: int) -> list[explaining.RecordExplanation]:  # type: ignore[valid-type]
        """Why: per record, the probability and decision with the top_k feature contributions."""
        rows = [r.__dict__ for r in records]
        self.threads.in_this_thread()
        explained = explain_rows(self.model, rows, top_k)
        return explaining.answers(explained, self.version)

    @bentoml.api(input_spec=FeedbackRequest, output_spec=FeedbackReceipt)  # type: ignore[untyped-decorator]
    def feedback(self, **body: Any) -> Any:
        """Flag a scored record as wrong or not meeting expectations (logged for monitoring)."""
        event = FeedbackEvent(
            ts=utc_now(),
            key=body[TABLE.key],
            reason=body["reason"],
            comment=body["comment"],
            model_version=self.version,
            request_id=body["request_id"],
        )
        self.logbook.feedback(event)
        return FeedbackReceipt(
            **{TABLE.key: event.key},
            reason=event.reason,
            model_version=event.model_version,
            received_at=event.ts,
        )

    @bentoml.api  # type: ignore[untyped-decorator]
    def metadata(self) -> Metadata:
        """Model version and sha256, threshold, git commit, data hashes, params, metrics."""
        return Metadata(
            **self.lineage.model_dump(),
            model_tag=self.tag,
            challenger_tag=self.challenger_tag,
            challenger=self.challenger.card if self.challenger else None,
        )


ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuard,
    max_bytes=MAX_BODY_BYTES,
    body_timeout=BODY_TIMEOUT_S,
    max_concurrency=MAX_CONCURRENCY,
    too_large_hint=f"; send at most {MAX_BATCH_RECORDS:,} records per request",
)
ModelService.add_asgi_middleware(OpenAPIPatch)  # type: ignore[attr-defined]
