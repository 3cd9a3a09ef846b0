"""The request contract is derived from the schema: fields, bounds, categories, strictness."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from mlops_template.core.schema import TABLE
from mlops_template.core.table import Column, Kind, Label, Table
from mlops_template.core.validation import DataValidationError, validate_table
from mlops_template.serving import contract
from tests.support import example_records

pytestmark = pytest.mark.unit

SCORED = list(TABLE.input_columns)


def errors(record: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        contract.Record.model_validate_json(json.dumps(record))
    return [(e["loc"], e["type"]) for e in info.value.errors()]


def test_fields_are_the_id_and_the_features() -> None:
    assert list(contract.Record.model_fields) == [c.name for c in SCORED]
    assert TABLE.label.name not in contract.Record.model_fields
    assert not {c.name for c in TABLE.columns if c.pii} & set(contract.Record.model_fields)


def test_required_unless_nullable() -> None:
    assert set(contract.OPTIONAL_FIELDS) == {c.name for c in SCORED if c.nullable}
    assert set(contract.REQUIRED_FIELDS) == {c.name for c in SCORED if not c.nullable}


@pytest.mark.parametrize(
    "column", [c for c in SCORED if c.min is not None or c.max is not None], ids=lambda c: c.name
)
def test_bounds_come_from_the_schema(column: Column) -> None:
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
    contract.Record.model_validate({**base, column.name: edge})


@pytest.mark.parametrize("column", [c for c in SCORED if c.categories], ids=lambda c: c.name)
def test_categories_come_from_the_schema(column: Column) -> None:
    base = example_records()[0]
    for category in column.categories:
        contract.Record.model_validate({**base, column.name: category})
    wrong = "not-a-category" if column.dtype == "str" else 10**6
    assert ((column.name,), "literal_error") in errors({**base, column.name: wrong})


@pytest.mark.parametrize(
    "column", [c for c in SCORED if c.kind is not Kind.BOOLEAN], ids=lambda c: c.name
)
def test_a_boolean_is_not_a_number_or_a_category(column: Column) -> None:
    found = errors({**example_records()[0], column.name: True})
    assert [loc for loc, _ in found] == [(column.name,)]


def test_unknown_fields_and_the_label_are_rejected() -> None:
    label = TABLE.label
    found = errors({**example_records()[0], label.name: label.positive, "not_a_field": 1})
    assert ((label.name,), "extra_forbidden") in found
    assert (("not_a_field",), "extra_forbidden") in found


def test_integer_coded_categories_are_sent_as_integers() -> None:
    table = Table(
        "t",
        (Column("band", Kind.CATEGORICAL, "coded", dtype="int64", categories=(1, 2, 3)),),
        Label("y", positive="Yes", negative="No", description=""),
    )
    record = contract.build_record_model(table)
    assert record.model_validate_json('{"band": 2}').model_dump() == {"band": 2}
    for wrong in ('"2"', "2.0", "true", "4"):
        with pytest.raises(ValidationError):
            record.model_validate_json(f'{{"band": {wrong}}}')
    prediction = contract.build_prediction_model(table)
    assert set(prediction.model_fields) == {"row", "probability", "contact", "model_version"}


def test_example_request_is_valid_for_the_contract_and_the_pandera_schema() -> None:
    records = [contract.Record.model_validate(r) for r in example_records()]
    frame = contract.records_frame(records)
    assert list(frame.columns) == [c.name for c in SCORED]
    failed: list[str] = []
    try:
        validate_table(frame, with_label=False, table_checks=False)
    except DataValidationError as exc:
        failed = [f.check for f in exc.failures]
    # Share-of-nulls limits are statistics of a whole batch, meaningless for 3 rows.
    assert all(check.startswith("null_fraction") for check in failed), failed


@pytest.mark.skipif(not contract.OPTIONAL_FIELDS, reason="the schema has no nullable column")
def test_example_request_exercises_null_and_missing_optional_fields() -> None:
    records = example_records()
    optional = set(contract.OPTIONAL_FIELDS)
    assert any(any(r.get(f, 0) is None for f in optional if f in r) for r in records)
    assert any(not optional <= set(r) for r in records)
