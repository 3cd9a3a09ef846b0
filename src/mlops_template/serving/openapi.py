"""The OpenAPI document at /docs.json, made to say what the service really does.

BentoML generates it from the input and output models, with three gaps: the 400 body's
`detail` is documented as a string (it is a list of pydantic errors), nullable fields of the
one-record body lose their `null` (BentoML keeps the first member of an `anyOf`), and request
bodies are not marked required. Nor does it list the 408 / 413 / 415 / 429 the guards answer.
`oas30_nullable` (a pydantic `json_schema_extra` hook on the record model) writes nullability
the OpenAPI 3.0 way, which survives; `patch_spec` fixes the rest, applied by `OpenAPIPatch` to
every /docs.json answer. schemathesis checks the result against the running server.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SPEC_PATH = "/docs.json"
_ERROR_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["type", "loc", "msg"],
    "properties": {
        "type": {"type": "string"},
        "loc": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
    },
}
VALIDATION_ERROR: dict[str, Any] = {
    "type": "object",
    "title": "InvalidArgument",
    "description": "The body does not match the request schema; `detail` names each field.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"oneOf": [{"type": "string"}, {"type": "array", "items": _ERROR_ITEM}]},
    },
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
GUARD_RESPONSES = {
    "408": "The request body did not arrive in time.",
    "413": "The request body is too large.",
    "415": "The body is not UTF-8 application/json.",
    "429": "Too many requests at once; retry shortly.",
    "503": "Overloaded (the batching queue is full); retry shortly.",
    "504": "Not answered within the service's timeout.",
}


def oas30_nullable(schema: dict[str, Any], model: Any = None) -> None:
    """`anyOf: [X, {type: null}]` -> X with `nullable: true`, for every property."""
    del model
    for prop in schema.get("properties", {}).values():
        variants = prop.get("anyOf")
        if not isinstance(variants, list) or len(variants) != 2 or {"type": "null"} not in variants:
            continue
        (other,) = [v for v in variants if v != {"type": "null"}]
        del prop["anyOf"]
        if "$ref" in other:
            prop["allOf"] = [other]
        else:
            prop.update(other)
        prop["nullable"] = True


def patch_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The document with the error bodies, required request bodies and guard answers."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["InvalidArgument"] = VALIDATION_ERROR
    schemas["Error"] = ERROR
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            body = operation["requestBody"]
            media_schemas = [m.get("schema", {}) for m in body.get("content", {}).values()]
            for schema in media_schemas:
                schema.pop("root_input", None)  # BentoML's, not OpenAPI's
            # A body is required where it has fields (not for /metadata's empty input).
            body["required"] = any(s.get("properties") or s.get("$ref") for s in media_schemas)
            responses = operation.setdefault("responses", {})
            for code, text in GUARD_RESPONSES.items():
                responses.setdefault(code, {"description": text, "content": ref})
    return spec


class OpenAPIPatch:
    """Applies `patch_spec` to the document BentoML serves at /docs.json."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != SPEC_PATH:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(patch_spec(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
