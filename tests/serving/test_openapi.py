"""The OpenAPI patch: nullable fields, error bodies, required request bodies, guard answers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from mlops_template.serving.openapi import GUARD_RESPONSES, oas30_nullable, patch_spec

pytestmark = pytest.mark.unit


class Thing(BaseModel):
    model_config = ConfigDict(json_schema_extra=oas30_nullable)

    size: float | None = None
    name: str


def test_nullable_is_written_the_openapi_3_0_way() -> None:
    schema = Thing.model_json_schema()
    size = schema["properties"]["size"]
    assert "anyOf" not in size
    assert size["nullable"] is True
    assert size["type"] == "number"
    assert "nullable" not in schema["properties"]["name"]


def test_patch_spec_documents_what_the_service_answers() -> None:
    spec: dict[str, Any] = {
        "paths": {
            "/p": {"post": {
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {"a": {}}, "root_input": True}}}},
                "responses": {"200": {}},
            }},
            "/empty": {"post": {
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "properties": {}}}}},
                "responses": {"200": {}},
            }},
            "/livez": {"get": {"responses": {"200": {}}}},
        },
    }  # fmt: skip
    patched = patch_spec(spec)
    post = patched["paths"]["/p"]["post"]
    assert post["requestBody"]["required"] is True
    assert "root_input" not in post["requestBody"]["content"]["application/json"]["schema"]
    assert set(GUARD_RESPONSES) <= set(post["responses"])
    assert patched["paths"]["/empty"]["post"]["requestBody"]["required"] is False
    assert "408" not in patched["paths"]["/livez"]["get"]["responses"]
    detail = patched["components"]["schemas"]["InvalidArgument"]["properties"]["detail"]
    assert {v["type"] for v in detail["oneOf"]} == {"string", "array"}
