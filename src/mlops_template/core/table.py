"""How a table is declared, and everything that follows from the declaration.

The schema module (`core/schema.py`) declares one `Table`: its columns, its label (with the
value that counts as positive), an optional id column and cross-column rules. From that one
declaration come the pandera schema the validate stage runs, the model's features and their
encoding, the service's request contract, the drift and quality checks, the tests' data and
the schema summary the pull-request report compares. Nothing else names a column.

A declaration that cannot work (a categorical column without categories, an id that may be
null, a label whose two values are equal, ...) raises `SchemaError` naming the column.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal, get_args

import numpy as np
import pandas as pd
import pandera.pandas as pa

from mlops_template.core.errors import SchemaError
from mlops_template.core.events import KEY_FIELD, RESERVED_NAMES

Value = str | int | bool  # a category or a label value, in the type the data has
Dtype = Literal["float64", "int64", "str", "bool"]
DTYPES: Final = get_args(Dtype)
ROW_KEY: Final = "row"  # the key of a record when the table has no id column
# The check on a nullable column's share of nulls: a rule about a whole column, not a record.
NULL_FRACTION_CHECK: Final = "null_fraction"
# Histogram-based gradient boosting splits on at most 255 values of a categorical feature.
MAX_CATEGORIES: Final = 255


class Kind(StrEnum):
    """What a column is for; this decides how the model treats it."""

    ID = "id"  # identifies a row: the key of every prediction; never a feature
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    METADATA = "metadata"  # validated and kept (a date, a name), never a feature


FEATURE_KINDS: Final = frozenset({Kind.NUMERIC, Kind.CATEGORICAL, Kind.BOOLEAN})
_PYTHON_TYPE: Final[dict[str, type]] = {"str": str, "int64": int, "bool": bool}


def _same_type(value: Any, dtype: str) -> bool:
    expected = _PYTHON_TYPE.get(dtype)
    if expected is int:  # bool is an int in Python, but not a valid integer category
        return isinstance(value, int) and not isinstance(value, bool)
    return expected is not None and isinstance(value, expected)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the table and the rules it obeys."""

    name: str
    kind: Kind
    description: str
    dtype: Dtype = "float64"
    min: float | None = None
    max: float | None = None
    categories: tuple[Value, ...] = ()
    nullable: bool = False
    # For nullable columns: the highest share of missing values still accepted. A column that
    # is suddenly (almost) all null is a broken export, not "optional".
    max_null_fraction: float = 0.0
    pattern: str | None = None  # a regular expression every value must match (text only)
    # Categories listed in a meaningful order (e.g. small < medium < large): encoded as one number,
    # so the model may be constrained to be monotonic in it.
    ordered: bool = False
    pii: bool = False  # personal data: never a feature, listed in the audit pack

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise SchemaError(f"column {self.name!r}: {problem}")

    def _problem(self) -> str | None:
        if not self.name:
            return "the name is empty"
        if self.dtype not in DTYPES:
            return f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}"
        if self.kind is Kind.ID and (self.nullable or self.dtype not in ("str", "int64")):
            return "an id column must be text or integer and may not be null"
        if self.kind is Kind.CATEGORICAL:
            if len(self.categories) < 2:
                return "a categorical column lists at least two categories"
            if self.dtype not in ("str", "int64"):
                return "categories are text or integers (use kind BOOLEAN for true/false)"
            if not self.ordered and len(self.categories) > MAX_CATEGORIES:
                return f"more than {MAX_CATEGORIES} categories; the model cannot split on them"
        elif self.categories or self.ordered:
            return "only categorical columns have categories (and an order)"
        wrong = [c for c in self.categories if not _same_type(c, self.dtype)]
        if wrong:
            return f"categories {wrong} are not of the column's dtype {self.dtype}"
        if len(set(self.categories)) != len(self.categories):
            return "categories are listed twice"
        if self.kind is Kind.NUMERIC and self.dtype not in ("float64", "int64"):
            return "a numeric column has dtype float64 or int64"
        if self.kind is Kind.BOOLEAN and (self.dtype != "bool" or self.nullable):
            return "a boolean column has dtype bool and may not be null (declare it categorical)"
        if (self.min is not None or self.max is not None) and self.dtype not in (
            "float64",
            "int64",
        ):
            return "only numbers have bounds"
        if self.min is not None and self.max is not None and self.min > self.max:
            return f"min {self.min} is above max {self.max}"
        if not 0.0 <= self.max_null_fraction <= 1.0 or (
            self.max_null_fraction and not self.nullable
        ):
            return "max_null_fraction is a share (0..1) and needs nullable=True"
        if self.pattern is not None and self.dtype != "str":
            return "only text columns have a pattern"
        return None

    @property
    def is_feature(self) -> bool:
        return self.kind in FEATURE_KINDS and not self.pii


@dataclass(frozen=True, slots=True)
class Label:
    """The column the model predicts, and which of its two values counts as positive."""

    name: str
    positive: Value
    negative: Value
    description: str

    def __post_init__(self) -> None:
        if type(self.positive) is not type(self.negative) or self.positive == self.negative:
            raise SchemaError(
                f"label {self.name!r}: positive {self.positive!r} and negative "
                f"{self.negative!r} must be two different values of one type"
            )

    @property
    def dtype(self) -> Dtype:
        if isinstance(self.positive, bool):
            return "bool"
        return "int64" if isinstance(self.positive, int) else "str"

    @property
    def values(self) -> tuple[Value, Value]:
        return (self.negative, self.positive)


@dataclass(frozen=True, slots=True)
class TableCheck:
    """A rule across columns (e.g. a total is about the sum of its parts).

    `passes(frame)` is True for each row that obeys it (missing values should pass: the
    columns' own rules cover them). `break_one_row(frame)` returns a copy in which exactly
    one row breaks the rule: the data tests use it to prove the rule is enforced.
    """

    name: str
    description: str
    columns: tuple[str, ...]
    passes: Callable[[pd.DataFrame], pd.Series]
    break_one_row: Callable[[pd.DataFrame], pd.DataFrame] | None = None


@dataclass(frozen=True)
class Table:
    """The table the project learns from: columns, label and cross-column rules."""

    name: str
    columns: tuple[Column, ...]
    label: Label
    checks: tuple[TableCheck, ...] = ()
    min_rows: int = 1

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise SchemaError(f"table {self.name!r}: columns declared twice: {twice}")
        if self.label.name in names:
            raise SchemaError(f"table {self.name!r}: the label {self.label.name!r} is a column")
        ids = [c.name for c in self.columns if c.kind is Kind.ID]
        if len(ids) > 1:
            raise SchemaError(f"table {self.name!r}: more than one id column: {ids}")
        # The logs and answers hold a record's fields beside their own (an id column may be
        # called KEY_FIELD: its value is the key).
        reserved = [
            c.name
            for c in self.columns
            if c.name in RESERVED_NAMES and not (c.kind is Kind.ID and c.name == KEY_FIELD)
        ]
        if reserved:
            name = reserved[0]
            raise SchemaError(
                f"table {self.name!r}: column {name!r} has a reserved name: it is "
                f"{RESERVED_NAMES[name]}, and the logs and answers hold a record's fields beside "
                f"their own; rename the column (reserved: {', '.join(sorted(RESERVED_NAMES))}; "
                f"{KEY_FIELD!r} only for an id column)"
            )
        if ROW_KEY in names and not ids:
            raise SchemaError(
                f"table {self.name!r}: without an id column, records are keyed by {ROW_KEY!r}, "
                "so no column may be called that"
            )
        if not self.features:
            raise SchemaError(f"table {self.name!r}: no feature columns")
        for check in self.checks:
            unknown = [c for c in check.columns if c not in names and c != self.label.name]
            if unknown:
                raise SchemaError(f"table check {check.name!r}: unknown columns {unknown}")

    # --- what follows from the declaration ---------------------------------------------

    @functools.cached_property
    def by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @functools.cached_property
    def id(self) -> Column | None:
        """The id column, or None: then records are keyed by their row number."""
        return next((c for c in self.columns if c.kind is Kind.ID), None)

    @property
    def key(self) -> str:
        """The name under which a prediction says which record it is for."""
        return self.id.name if self.id else ROW_KEY

    @functools.cached_property
    def features(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.is_feature)

    @functools.cached_property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features)

    @functools.cached_property
    def categorical_mask(self) -> tuple[bool, ...]:
        """Per feature: split on it as categories (unordered) rather than as a number."""
        return tuple(c.kind is Kind.CATEGORICAL and not c.ordered for c in self.features)

    @functools.cached_property
    def ordered_features(self) -> tuple[str, ...]:
        """Features whose values have an order: numbers, ordered categories and booleans."""
        return tuple(
            n for n, cat in zip(self.feature_names, self.categorical_mask, strict=True) if not cat
        )

    @functools.cached_property
    def input_columns(self) -> tuple[Column, ...]:
        """What a record to score holds: the id (when there is one) and the features."""
        return tuple(c for c in self.columns if c.kind is Kind.ID or c.is_feature)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column of a training table, the label last."""
        return (*(c.name for c in self.columns), self.label.name)

    @functools.cached_property
    def segment_columns(self) -> tuple[str, ...]:
        """Columns whose values make segments: categories and booleans."""
        kinds = (Kind.CATEGORICAL, Kind.BOOLEAN)
        return tuple(c.name for c in self.columns if c.kind in kinds)

    def target(self, frame: pd.DataFrame) -> np.ndarray:
        """The label as 1 (positive) / 0 (negative)."""
        return (frame[self.label.name] == self.label.positive).to_numpy(dtype=np.int64)

    def keys(self, frame: pd.DataFrame) -> list[Any]:
        """Each row's key: its id, or its row number in `frame` when there is no id column."""
        if self.id is None:
            return list(range(len(frame)))
        return frame[self.id.name].tolist()

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input: a float matrix, one column per feature in declaration order.

        Categories become their position in the declared list (an unknown or missing one is
        NaN, which the model treats as missing); booleans 0/1; numbers as they are.
        """
        out = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for j, col in enumerate(self.features):
            values = frame[col.name]
            if col.kind is Kind.CATEGORICAL:
                codes = self._category_index(col.name).get_indexer(pd.Index(values))  # -1: unlisted
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """`encode` for records given as mappings (the service's hot path: no frame at all).
        The same values as `encode` of the same records, bit for bit."""
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        positions = [self._category_positions(c.name) for c in self.features]
        names = self.feature_names
        for i, row in enumerate(rows):
            for j, (name, lookup) in enumerate(zip(names, positions, strict=True)):
                value = row.get(name)
                if lookup is not None:
                    out[i, j] = math.nan if value is None else lookup.get(value, math.nan)
                else:
                    out[i, j] = math.nan if value is None else float(value)
        return out

    @functools.cache  # noqa: B019 - a handful of tables live for the whole process
    def _category_index(self, name: str) -> pd.Index:
        return pd.Index(list(self.by_name[name].categories))

    @functools.cache  # noqa: B019 - a handful of tables live for the whole process
    def _category_positions(self, name: str) -> dict[Value, float] | None:
        col = self.by_name[name]
        if col.kind is not Kind.CATEGORICAL:
            return None
        return {value: float(i) for i, value in enumerate(col.categories)}

    def describe(self) -> dict[str, Any]:
        """A plain summary of the declaration: stored with every run, compared by reviews."""
        columns = []
        for c in self.columns:
            entry: dict[str, Any] = {"name": c.name, "kind": str(c.kind), "dtype": c.dtype}
            if c.categories:
                entry["categories"] = list(c.categories)
                entry["ordered"] = c.ordered
            entry["nullable"] = c.nullable
            if c.pii:
                entry["pii"] = True
            columns.append(entry)
        label = self.label
        return {
            "table": self.name,
            "columns": columns,
            "label": {"name": label.name, "positive": label.positive, "negative": label.negative},
        }

    # --- pandera ---------------------------------------------------------------------------

    @functools.cache  # noqa: B019 - a handful of tables live for the whole process
    def pandera(self, *, with_label: bool = True, table_checks: bool = True) -> pa.DataFrameSchema:
        """The pandera schema of the table (of records to score: `with_label=False`)."""
        columns = {c.name: _pandera_column(c) for c in self.columns}
        if with_label:
            label = self.label
            columns[label.name] = pa.Column(
                label.dtype,
                checks=[pa.Check.isin(list(label.values))],
                coerce=label.dtype != "bool",
                description=label.description,
                title=label.name,
            )
        checks = [
            pa.Check(lambda df: len(df) >= self.min_rows, name=f"at_least_{self.min_rows}_rows")
        ]
        if table_checks:
            checks += [pa.Check(check.passes, name=check.name) for check in self.checks]
        return pa.DataFrameSchema(
            columns,
            checks=checks,
            parsers=[pa.Parser(functools.partial(_keep_values_intact, self))],
            strict=True,
            name=self.name,
        )


def _pandera_column(col: Column) -> pa.Column:
    return pa.Column(
        col.dtype,
        checks=_column_checks(col),
        nullable=col.nullable,
        unique=col.kind is Kind.ID,
        coerce=col.dtype != "bool",
        description=col.description,
        title=col.name,
    )


def _finite(series: pd.Series) -> pd.Series:
    return ~series.isin([math.inf, -math.inf])


def _is_boolean(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _column_checks(col: Column) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.min is not None:
        checks.append(pa.Check.ge(col.min))
    if col.max is not None:
        checks.append(pa.Check.le(col.max))
    if col.categories:
        checks.append(pa.Check.isin(list(col.categories)))
    if col.pattern:
        checks.append(pa.Check.str_matches(col.pattern))
    if col.dtype == "float64":
        checks.append(pa.Check(_finite, name="finite"))
    if col.dtype == "bool":
        # Not coerced (see `_keep_values_intact`): anything that is not a boolean is an error.
        checks.append(pa.Check(_is_boolean, element_wise=True, name="is_boolean"))
    if col.nullable:
        limit = col.max_null_fraction
        checks.append(
            pa.Check(
                # Compared as counts so that an empty table is not also a null-rate failure.
                lambda s, limit=limit: s.isna().sum() <= limit * len(s),
                element_wise=False,
                ignore_na=False,
                name=f"{NULL_FRACTION_CHECK}<={limit}",
            )
        )
    return checks


_BOOLEAN_WORDS: Final[dict[str, bool]] = {"true": True, "false": False, "1": True, "0": False}


def _as_boolean(value: object) -> object:
    """The boolean a value spells (True, "false", 1, "0", ...); anything else unchanged."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _BOOLEAN_WORDS.get(value.strip().lower(), value)
    return value


def _keep_values_intact(table: Table, df: pd.DataFrame) -> pd.DataFrame:
    """Runs before dtype coercion, so that coercion can never silently change a value.

    Casting to int64 truncates 0.5 to 0 and casting to bool turns any text (even "False")
    into True. So whole-number columns get their fractional values as text, which then fails
    coercion with the row and value named; boolean columns are not coerced but parsed here,
    and the `is_boolean` check rejects whatever is left that is not a boolean.

    A whole-number column that cannot be coerced as a whole (one bad value among text read
    from a CSV) keeps its other values as the integers they spell, so that its checks fail
    on the bad record only, not on every record of the table.
    """
    dtypes = {c.name: c.dtype for c in table.columns} | {table.label.name: table.label.dtype}
    changed: dict[str, pd.Series] = {}
    for name in df.columns:
        dtype = dtypes.get(str(name))
        s = df[name]
        if dtype is None or str(s.dtype) == dtype:
            continue
        if dtype == "int64" and not pd.api.types.is_integer_dtype(s.dtype):
            numbers = pd.to_numeric(s, errors="coerce")
            fractional = numbers.notna() & (numbers % 1 != 0)
            whole = numbers.notna() & ~fractional
            if fractional.any() or not whole.all():
                kept = s.astype(object).where(~fractional, s.astype(str))
                ints = pd.Series(
                    [int(n) if w else None for n, w in zip(numbers, whole, strict=True)],
                    index=s.index,
                    dtype=object,
                )
                changed[str(name)] = kept.where(~whole, ints)
        elif dtype == "bool":
            changed[str(name)] = s.astype(object).map(_as_boolean)
    return df.assign(**changed) if changed else df
