"""The request contract is derived from the schema: fields, bounds, categories, strictness."""

from __future__ import annotations

import json
from typing import Any

import pandera.errors as pa_errors
import pytest
from pydantic import ValidationError

from conftest import ROOT
from mlops_template import contract, schema

pytestmark = pytest.mark.unit

SCORED = [c for c in schema.COLUMNS if c.kind is not schema.Kind.LABEL]


def example_records() -> list[dict[str, Any]]:
    data = json.loads((ROOT / contract.EXAMPLE_REQUEST).read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = data["records"]
    return records


def errors(record: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        contract.CustomerRecord.model_validate_json(json.dumps(record))
    return [(e["loc"], e["type"]) for e in info.value.errors()]


def test_fields_are_the_schema_columns_without_the_label() -> None:
    assert list(contract.CustomerRecord.model_fields) == [c.name for c in SCORED]
    assert schema.LABEL not in contract.CustomerRecord.model_fields


def test_required_unless_nullable() -> None:
    assert set(contract.OPTIONAL_FIELDS) == {c.name for c in SCORED if c.nullable}
    assert set(contract.REQUIRED_FIELDS) == {c.name for c in SCORED if not c.nullable}


@pytest.mark.parametrize(
    "column", [c for c in SCORED if c.min is not None or c.max is not None], ids=lambda c: c.name
)
def test_bounds_come_from_the_schema(column: schema.Column) -> None:
    base = example_records()[0]
    assert column.min is not None
    assert column.max is not None
    step = 1 if column.dtype == "int64" else 0.5
    low, high = column.min - step, column.max + step
    if column.dtype == "int64":
        low, high = int(low), int(high)
    assert ((column.name,), "greater_than_equal") in errors({**base, column.name: low})
    assert ((column.name,), "less_than_equal") in errors({**base, column.name: high})
    edge = int(column.max) if column.dtype == "int64" else column.max
    contract.CustomerRecord.model_validate({**base, column.name: edge})


@pytest.mark.parametrize("column", [c for c in SCORED if c.categories], ids=lambda c: c.name)
def test_categories_come_from_the_schema(column: schema.Column) -> None:
    base = example_records()[0]
    for category in column.categories:
        contract.CustomerRecord.model_validate({**base, column.name: category})
    assert ((column.name,), "literal_error") in errors({**base, column.name: "not-a-category"})


@pytest.mark.parametrize(
    "column", [c for c in SCORED if c.kind is schema.Kind.NUMERIC], ids=lambda c: c.name
)
def test_a_boolean_is_not_a_number(column: schema.Column) -> None:
    found = errors({**example_records()[0], column.name: True})
    assert [loc for loc, _ in found] == [(column.name,)]


def test_unknown_fields_are_rejected() -> None:
    assert (("churned",), "extra_forbidden") in errors({**example_records()[0], "churned": 0})


def test_example_request_is_valid_for_the_contract_and_the_pandera_schema() -> None:
    records = [contract.CustomerRecord.model_validate(r) for r in example_records()]
    frame = contract.records_frame(records)
    assert list(frame.columns) == [c.name for c in SCORED]
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        c.name: c.dtype for c in SCORED
    }
    try:
        schema.build_schema(with_label=False).validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        # Share-of-nulls limits are statistics of a whole batch, meaningless for 3 rows.
        failed = set(exc.failure_cases["check"].astype(str))
        assert all(f.startswith("null_fraction") for f in failed), failed


def test_example_request_exercises_null_and_missing_optional_fields() -> None:
    records = example_records()
    optional = set(contract.OPTIONAL_FIELDS)
    assert any(any(r.get(f, 0) is None for f in optional if f in r) for r in records)
    assert any(not optional <= set(r) for r in records)
