"""The scoring contract: pydantic models of one customer record, derived from `schema.COLUMNS`.

The service's request model (and anything else that takes records from outside, such as a
drift check on logged requests) is built here from the schema, so a column added, bounded or
given a new category in `schema.py` reaches the API without another edit.

Rules, all from the schema:
- every feature column and the id are fields; the label is not (it is what we predict);
- strict types: a boolean is not a number, a number is not a string, `1.0` is not an int;
- numbers must be finite and inside the column's [min, max];
- categorical columns accept only their listed categories. An unknown category is rejected
  with a 4xx rather than scored as "unseen": the schema is the contract, and a new category
  means the data changed and the model was never trained on it;
- nullable columns are optional (missing or null = unknown); every other field is required;
- unknown fields are rejected, so a misspelled field name is an error, not a silent null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, create_model

from mlops_template import schema

_RECORD_CONFIG: Final = ConfigDict(extra="forbid", strict=True, frozen=True)
# The one example request (relative to the repository root): the README, the tests, the bento
# and the container smoke test all send this file.
EXAMPLE_REQUEST: Final = Path("examples/request.json")


def _field_type(col: schema.Column) -> Any:
    """The pydantic type of one column: base type + bounds + categories."""
    bounds: dict[str, Any] = {}
    if col.min is not None:
        bounds["ge"] = col.min
    if col.max is not None:
        bounds["le"] = col.max
    if col.kind is schema.Kind.BOOLEAN:
        return StrictBool
    if col.categories:
        return Literal[col.categories]
    if col.dtype == "int64":
        return Annotated[StrictInt, Field(**bounds)]
    if col.dtype == "float64":
        return Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds)]
    if col.pattern:
        return Annotated[StrictStr, Field(pattern=col.pattern)]
    return StrictStr


def _field(col: schema.Column) -> tuple[Any, Any]:
    typ = _field_type(col)
    info = Field(description=col.description, title=col.name)
    if col.nullable:
        return typ | None, Field(default=None, description=col.description, title=col.name)
    return typ, info


def build_record_model(name: str = "CustomerRecord") -> type[BaseModel]:
    """A pydantic model of one customer record to score (the id and every feature)."""
    fields = {c.name: _field(c) for c in schema.COLUMNS if c.kind is not schema.Kind.LABEL}
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name,
        __config__=_RECORD_CONFIG,
        __doc__="One customer to score. Fields, bounds and categories come from the schema.",
        **fields,
    )
    return model


CustomerRecord: Final[type[BaseModel]] = build_record_model()
REQUIRED_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name, info in CustomerRecord.model_fields.items() if info.is_required()
)
OPTIONAL_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name, info in CustomerRecord.model_fields.items() if not info.is_required()
)


def records_frame(records: list[BaseModel]) -> pd.DataFrame:
    """Validated records as a frame with the schema's column order and dtypes."""
    columns = [c for c in schema.COLUMNS if c.kind is not schema.Kind.LABEL]
    rows = [r.model_dump() for r in records]
    frame = pd.DataFrame.from_records(rows, columns=[c.name for c in columns])
    # Nullable columns may hold None; float64 turns them into NaN for the imputers.
    return frame.astype({c.name: c.dtype for c in columns})


class Prediction(BaseModel):
    """The model's answer for one customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str = Field(description="The id sent in the request.")
    churn_probability: float = Field(ge=0.0, le=1.0, description="P(churn next quarter).")
    contact: bool = Field(
        description="Contact this customer: churn probability >= the profit-tuned threshold."
    )
    model_version: str = Field(description="Version (sha256 prefix) of the model that answered.")
