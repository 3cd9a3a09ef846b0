"""The example request is drawn from the test set and always fits the contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.params import Example, Params
from mlops_template.core.table import Column, Kind, Label, Table
from mlops_template.pipeline.example import example_request
from mlops_template.serving import contract
from tests.support import ROOT

pytestmark = pytest.mark.unit

TABLE = Table(
    "t",
    (
        Column("key", Kind.ID, "id", dtype="int64"),
        Column("band", Kind.CATEGORICAL, "coded", dtype="int64", categories=(1, 2, 3)),
        Column("size", Kind.NUMERIC, "a number", nullable=True, max_null_fraction=1.0),
        Column("flag", Kind.BOOLEAN, "a flag", dtype="bool"),
        Column("email", Kind.METADATA, "contact", dtype="str", pii=True),
    ),
    Label("y", positive="Yes", negative="No", description=""),
)


def test_records_hold_the_id_and_features_in_the_datas_own_types() -> None:
    test = pd.DataFrame(
        {
            "key": np.arange(10, dtype=np.int64),
            "band": np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 1], dtype=np.int64),
            "size": np.linspace(0.5, 5.0, 10),
            "flag": [True, False] * 5,
            "email": [f"p{i}@example.invalid" for i in range(10)],
            "y": ["Yes", "No"] * 5,
        }
    )
    request = example_request(test, Example(n_records=3, seed=1), TABLE)
    records = request["records"]
    assert len(records) == 3
    assert all("email" not in r and "y" not in r for r in records), "no PII, no label"
    assert records[1]["size"] is None, "one unknown value sent as null"
    assert "size" not in records[2], "and one left out"
    assert {type(r["band"]) for r in records} == {int}
    assert {type(r["flag"]) for r in records} == {bool}
    model = contract.build_record_model(TABLE)
    for record in json.loads(json.dumps(request))["records"]:
        model.model_validate_json(json.dumps(record))


def test_the_committed_example_is_what_the_stage_draws(params: Params) -> None:
    committed = json.loads((ROOT / params.paths.example).read_text(encoding="utf-8"))
    assert len(committed["records"]) == params.example.n_records
    for record in committed["records"]:
        contract.Record.model_validate_json(json.dumps(record))
