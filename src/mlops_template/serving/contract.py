"""The scoring contract: pydantic models of one record and one prediction, derived from the schema.

The service's request model (and anything else that takes records from outside, such as
batch scoring or monitoring's logged requests) is built here from `TABLE`, so a column added,
bounded or given a new category in the schema module reaches the API without another edit.

Rules, all from the schema:
- the id column (when the table has one) and every feature are fields; the label is not;
- strict types: a boolean is not a number, a number is not a string, `1.0` is not an int;
  categories are sent in the type the data has (an integer-coded category as an integer);
- numbers must be finite and inside the column's [min, max];
- categorical columns accept only their listed categories. An unknown category is rejected
  with a 4xx rather than scored as "unseen": the schema is the contract, and a new category
  means the data changed and the model was never trained on it;
- nullable columns are optional (missing or null = unknown); every other field is required;
- unknown fields are rejected, so a misspelled field name is an error, not a silent null.

A prediction carries the record's key under the id column's own name (or `row`, its position
in the request, when the table has no id), the probability of the positive label and the
contact decision.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    create_model,
)
from pydantic_core import PydanticCustomError

from mlops_template.core.schema import TABLE
from mlops_template.core.table import Column, Kind, Table
from mlops_template.serving.openapi import oas30_nullable

_RECORD_CONFIG: Final = ConfigDict(
    extra="forbid", strict=True, frozen=True, json_schema_extra=oas30_nullable
)


def _integer(value: Any) -> Any:
    """An integer category is an integer: not `true`, not `2.0` (a Literal alone takes both)."""
    if type(value) is not int:
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _field_type(col: Column) -> Any:
    """The pydantic type of one column: base type + bounds + categories."""
    bounds: dict[str, Any] = {}
    if col.min is not None:
        bounds["ge"] = col.min
    if col.max is not None:
        bounds["le"] = col.max
    if col.kind is Kind.BOOLEAN:
        return StrictBool
    if col.categories:
        if col.dtype == "int64":
            return Annotated[Literal[col.categories], BeforeValidator(_integer)]
        return Literal[col.categories]
    if col.dtype == "int64":
        return Annotated[StrictInt, Field(**bounds)]
    if col.dtype == "float64":
        return Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds)]
    if col.pattern:
        return Annotated[StrictStr, Field(pattern=col.pattern)]
    return StrictStr


def _field(col: Column) -> tuple[Any, Any]:
    typ = _field_type(col)
    if col.nullable:
        return typ | None, Field(default=None, description=col.description, title=col.name)
    return typ, Field(description=col.description, title=col.name)


def build_record_model(table: Table = TABLE, name: str = "Record") -> type[BaseModel]:
    """A pydantic model of one record to score (the id, when there is one, and every feature)."""
    fields = {c.name: _field(c) for c in table.input_columns}
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name,
        __config__=_RECORD_CONFIG,
        __doc__="One record to score. Fields, bounds and categories come from the schema.",
        **fields,
    )
    return model


def build_prediction_model(table: Table = TABLE, name: str = "Prediction") -> type[BaseModel]:
    """The answer for one record, keyed like the record."""
    key_type: Any = int if table.id is None or table.id.dtype == "int64" else str
    key_doc = (
        "The record's position in the request (the table has no id column)."
        if table.id is None
        else "The id sent in the request."
    )
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name,
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__="The model's answer for one record.",
        **{
            table.key: (key_type, Field(description=key_doc)),
            "probability": (
                float,
                Field(
                    ge=0.0, le=1.0, description=f"P({table.label.name} = {table.label.positive!r})."
                ),
            ),
            "contact": (
                bool,
                Field(
                    description="Contact this record: probability >= the profit-tuned threshold."
                ),
            ),
            "model_version": (str, Field(description="Version (sha256 prefix) of the model.")),
        },
    )
    return model


Record: Final[type[BaseModel]] = build_record_model()
Prediction: Final[type[BaseModel]] = build_prediction_model()
REQUIRED_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name, info in Record.model_fields.items() if info.is_required()
)
OPTIONAL_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name, info in Record.model_fields.items() if not info.is_required()
)


def records_frame(records: list[BaseModel], table: Table = TABLE) -> pd.DataFrame:
    """Validated records as a frame with the schema's column order and dtypes."""
    columns = table.input_columns
    rows = [r.model_dump() for r in records]
    frame = pd.DataFrame.from_records(rows, columns=[c.name for c in columns])
    # Nullable columns may hold None; float64 turns them into NaN.
    return frame.astype(
        {c.name: c.dtype for c in columns if not c.nullable or c.dtype == "float64"}
    )
