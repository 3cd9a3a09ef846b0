"""The table machinery on small hand-made declarations (not the team's schema): what a
declaration may say, and what follows from it (features, encoding, label, keys, pandera)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.errors import SchemaError
from mlops_template.core.events import KEY_FIELD, RESERVED_NAMES, FeedbackEvent, PredictionEvent
from mlops_template.core.schema import TABLE
from mlops_template.core.table import ROW_KEY, Column, Kind, Label, Table, TableCheck
from mlops_template.core.validation import DataValidationError, validate_table

pytestmark = pytest.mark.unit


def _table(*columns: Column, label: Label | None = None, **kwargs: object) -> Table:
    return Table(
        name="t",
        columns=columns,
        label=label or Label("y", positive="Yes", negative="No", description="the outcome"),
        **kwargs,  # type: ignore[arg-type]
    )


SIZE = Column("size", Kind.NUMERIC, "a number", min=0.0, max=10.0, nullable=True,
              max_null_fraction=0.5)  # fmt: skip
BAND = Column("band", Kind.CATEGORICAL, "integer-coded", dtype="int64", categories=(1, 2, 3))
LEVEL = Column(
    "level", Kind.CATEGORICAL, "ordered", dtype="str", categories=("low", "mid", "high"),
    ordered=True,
)  # fmt: skip
FLAG = Column("flag", Kind.BOOLEAN, "a flag", dtype="bool")
REF = Column("ref", Kind.ID, "an id", dtype="str", pattern=r"^K\d+$")


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        (lambda: Column("c", Kind.CATEGORICAL, "", dtype="str"), "at least two categories"),
        (lambda: Column("c", Kind.CATEGORICAL, "", dtype="int64", categories=("a", "b")),
         "not of the column's dtype"),
        (lambda: Column("c", Kind.CATEGORICAL, "", dtype="int64", categories=(True, False)),
         "not of the column's dtype"),
        (lambda: Column("c", Kind.ID, "", dtype="str", nullable=True), "may not be null"),
        (lambda: Column("c", Kind.NUMERIC, "", dtype="str"), "float64 or int64"),
        (lambda: Column("c", Kind.NUMERIC, "", min=3, max=1), "above max"),
        (lambda: Column("c", Kind.BOOLEAN, "", dtype="bool", nullable=True), "may not be null"),
        (lambda: Column("c", Kind.NUMERIC, "", ordered=True), "only categorical"),
        (lambda: Column("c", Kind.NUMERIC, "", max_null_fraction=0.5), "needs nullable"),
        (lambda: Column("c", Kind.NUMERIC, "", pattern="x"), "only text columns"),
        (lambda: Column("c", Kind.NUMERIC, "", dtype="date"), "is not one of"),  # type: ignore[arg-type]
        (lambda: Column("c", Kind.CATEGORICAL, "", dtype="str", categories=("a", "a")),
         "listed twice"),
    ],
)  # fmt: skip
def test_impossible_column_declarations_are_named(column: object, problem: str) -> None:
    with pytest.raises(SchemaError, match=problem) as info:
        column()  # type: ignore[operator]
    assert "column 'c'" in str(info.value)


def test_impossible_table_declarations_are_named() -> None:
    with pytest.raises(SchemaError, match="declared twice"):
        _table(SIZE, SIZE)
    with pytest.raises(SchemaError, match="label 'size' is a column"):
        _table(SIZE, label=Label("size", positive=1, negative=0, description=""))
    with pytest.raises(SchemaError, match="more than one id"):
        _table(REF, Column("ref2", Kind.ID, "", dtype="int64"), SIZE)
    with pytest.raises(SchemaError, match="no feature columns"):
        _table(REF)
    with pytest.raises(SchemaError, match="unknown columns"):
        _table(SIZE, checks=(TableCheck("c", "", ("nope",), lambda df: df["nope"] > 0),))
    with pytest.raises(SchemaError, match="two different values"):
        Label("y", positive=1, negative=True, description="")


def test_features_exclude_id_metadata_and_pii() -> None:
    email = Column("email", Kind.METADATA, "contact", dtype="str", pii=True)
    secret = Column("income", Kind.NUMERIC, "personal", pii=True)
    table = _table(REF, SIZE, BAND, email, secret, LEVEL, FLAG)
    assert table.feature_names == ("size", "band", "level", "flag")
    assert table.categorical_mask == (False, True, False, False)
    assert table.ordered_features == ("size", "level", "flag")
    assert table.segment_columns == ("band", "level", "flag")
    assert [c.name for c in table.input_columns] == ["ref", "size", "band", "level", "flag"]
    assert table.column_names == ("ref", "size", "band", "email", "income", "level", "flag", "y")


def test_encode_gives_category_positions_numbers_and_nan_for_unknown() -> None:
    table = _table(SIZE, BAND, LEVEL, FLAG)
    frame = pd.DataFrame(
        {
            "size": [1.5, np.nan, 3.0],
            "band": [3, 1, 7],  # 7 is not a declared category
            "level": ["high", None, "low"],
            "flag": [True, False, True],
            "y": ["Yes", "No", "No"],
        }
    )
    encoded = table.encode(frame)
    assert encoded.shape == (3, 4)  # size, band, level, flag
    assert encoded.dtype == np.float64
    np.testing.assert_array_equal(encoded[:, 1], [2.0, 0.0, np.nan])
    np.testing.assert_array_equal(encoded[:, 2], [2.0, np.nan, 0.0])
    np.testing.assert_array_equal(encoded[:, 3], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(encoded[:, 0], [1.5, np.nan, 3.0])
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in frame.to_dict("records")]  # fmt: skip
    np.testing.assert_array_equal(table.encode_rows(rows), encoded)


@pytest.mark.parametrize(
    ("label", "values", "expected"),
    [
        (Label("y", positive="Yes", negative="No", description=""), ["Yes", "No"], [1, 0]),
        (Label("y", positive="bought", negative="passed", description=""),
         ["passed", "bought"], [0, 1]),
        (Label("y", positive=0, negative=1, description=""), [0, 1], [1, 0]),
        (Label("y", positive=True, negative=False, description=""), [False, True], [0, 1]),
    ],
)  # fmt: skip
def test_target_is_one_for_the_declared_positive_value(
    label: Label, values: list[object], expected: list[int]
) -> None:
    table = _table(SIZE, label=label)
    frame = pd.DataFrame({"size": [1.0, 2.0], "y": values})
    assert table.target(frame).tolist() == expected


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
@pytest.mark.parametrize("kind", [Kind.NUMERIC, Kind.ID, Kind.METADATA])
def test_columns_may_not_take_the_names_the_logs_and_answers_use(name: str, kind: Kind) -> None:
    """A prediction log line holds the record's fields beside its own; an answer and a
    feedback body hold the id beside theirs: a column of the same name would collide."""
    column = Column(name, kind, "", dtype="int64")
    if kind is Kind.ID and name == KEY_FIELD:
        assert _table(column, SIZE).key == KEY_FIELD, "an id may be called key: it is the key"
        return
    with pytest.raises(SchemaError, match=f"column '{name}' has a reserved name") as info:
        _table(column, SIZE) if kind is not Kind.NUMERIC else _table(column)
    assert RESERVED_NAMES[name] in str(info.value), "says why"


def test_the_reserved_names_are_the_logs_own_and_the_sample_takes_none() -> None:
    assert set(PredictionEvent.model_fields) <= set(RESERVED_NAMES)
    assert set(FeedbackEvent.model_fields) <= set(RESERVED_NAMES)
    assert not set(TABLE.column_names) & set(RESERVED_NAMES)


def test_a_table_without_id_is_keyed_by_row_number() -> None:
    without = _table(SIZE)
    assert without.id is None
    assert without.key == ROW_KEY
    frame = pd.DataFrame({"size": [5.0, 6.0, 7.0]}, index=[10, 11, 12])
    assert without.keys(frame) == [0, 1, 2]
    with_id = _table(REF, SIZE)
    assert with_id.key == "ref"
    assert with_id.keys(pd.DataFrame({"ref": ["K1", "K2"], "size": [1.0, 2.0]})) == ["K1", "K2"]


def test_pandera_schema_checks_label_values_and_keeps_values_intact() -> None:
    table = _table(SIZE, BAND, FLAG)
    good = pd.DataFrame(
        {"size": [1.0, 2.0], "band": [1, 3], "flag": ["true", "0"], "y": ["Yes", "No"]}
    )
    validated = validate_table(good, table=table)
    assert validated["flag"].tolist() == [True, False]
    with pytest.raises(DataValidationError, match=r"column 'y'.*isin.*maybe"):
        validate_table(good.assign(y=["Yes", "maybe"]), table=table)
    with pytest.raises(DataValidationError, match=r"column 'band'.*2\.5"):
        validate_table(good.assign(band=[1.0, 2.5]), table=table)
    # Records to score carry no label.
    validate_table(good.drop(columns=["y"]), table=table, with_label=False)


def test_table_checks_run_on_training_data_only_when_asked() -> None:
    check = TableCheck("size_below_band", "size <= band", ("size", "band"),
                       lambda df: df["size"] <= df["band"])  # fmt: skip
    table = _table(SIZE, BAND, checks=(check,))
    frame = pd.DataFrame({"size": [5.0], "band": [1], "y": ["No"]})
    with pytest.raises(DataValidationError, match="the table: check 'size_below_band'"):
        validate_table(frame, table=table)
    validate_table(frame, table=table, table_checks=False)


def test_describe_records_what_a_review_compares() -> None:
    described = _table(REF, SIZE, BAND).describe()
    assert described["label"] == {"name": "y", "positive": "Yes", "negative": "No"}
    assert [c["name"] for c in described["columns"]] == ["ref", "size", "band"]
    band = described["columns"][2]
    assert band == {"name": "band", "kind": "categorical", "dtype": "int64",
                    "categories": [1, 2, 3], "ordered": False, "nullable": False}  # fmt: skip
