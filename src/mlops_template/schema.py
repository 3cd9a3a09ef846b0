"""The data contract: every column the project knows, declared once.

`COLUMNS` is the single source of truth. The pandera schema that the validate stage runs,
the model's feature lists, the service's request model and the drift checks are all derived
from it; no other module spells out a column name, a range or a category list.

To adapt the template to your own data, edit `COLUMNS` (and `ID`, `LABEL`), then the
dataframe-level checks at the bottom if your data has cross-column rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import pandas as pd
import pandera.pandas as pa


class Kind(StrEnum):
    """What a column is for; this decides how the model treats it."""

    ID = "id"  # identifies a row; never reaches the model
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    LABEL = "label"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the customer table and the rules it obeys."""

    name: str
    kind: Kind
    description: str
    dtype: str = "float64"
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    # For nullable columns: the highest share of missing values we still accept. A column
    # that is suddenly (almost) all null is a broken export, not "optional".
    max_null_fraction: float = 0.0
    pattern: str | None = None
    # Categories listed in a meaningful order (e.g. contract length): encoded as one ordinal
    # feature instead of one-hot, so a monotonic constraint can be placed on it.
    ordered: bool = False

    @property
    def is_feature(self) -> bool:
        return self.kind in (Kind.NUMERIC, Kind.CATEGORICAL, Kind.BOOLEAN)


COLUMNS: Final[tuple[Column, ...]] = (
    Column("customer_id", Kind.ID, "Unique customer identifier.", dtype="str", pattern=r"^C\d{8}$"),
    Column(
        "tenure_months",
        Kind.NUMERIC,
        "Months since the customer signed up.",
        dtype="int64",
        min=0,
        max=120,
    ),
    Column(
        "contract",
        Kind.CATEGORICAL,
        "Contract type.",
        dtype="str",
        categories=("month_to_month", "one_year", "two_year"),
        ordered=True,
    ),
    Column("monthly_charges", Kind.NUMERIC, "Current monthly bill.", min=5.0, max=500.0),
    Column(
        "total_charges",
        Kind.NUMERIC,
        "Amount billed so far (missing for customers in their first month).",
        min=0.0,
        max=60_000.0,
        nullable=True,
        max_null_fraction=0.2,
    ),
    Column(
        "payment_method",
        Kind.CATEGORICAL,
        "How the customer pays.",
        dtype="str",
        categories=("electronic_check", "mailed_check", "bank_transfer", "credit_card"),
    ),
    Column(
        "internet_service",
        Kind.CATEGORICAL,
        "Internet product.",
        dtype="str",
        categories=("dsl", "fiber_optic", "none"),
    ),
    Column(
        "support_calls",
        Kind.NUMERIC,
        "Calls to support in the last quarter.",
        dtype="int64",
        min=0,
        max=50,
    ),
    Column(
        "age", Kind.NUMERIC, "Age of the account holder in years.", dtype="int64", min=18, max=100
    ),
    Column(
        "region",
        Kind.CATEGORICAL,
        "Sales region.",
        dtype="str",
        categories=("north", "south", "east", "west", "central"),
    ),
    Column(
        "num_services",
        Kind.NUMERIC,
        "Number of add-on services subscribed.",
        dtype="int64",
        min=0,
        max=8,
    ),
    Column("paperless_billing", Kind.BOOLEAN, "Receives bills electronically only.", dtype="bool"),
    Column(
        "satisfaction_score",
        Kind.NUMERIC,
        "Last survey answer, 1 (bad) to 5 (good); missing when never surveyed.",
        min=1.0,
        max=5.0,
        nullable=True,
        max_null_fraction=0.6,
    ),
    Column(
        "days_since_last_login",
        Kind.NUMERIC,
        "Days since the last login to the self-service portal; missing if never.",
        min=0.0,
        max=3650.0,
        nullable=True,
        max_null_fraction=0.5,
    ),
    Column(
        "churned",
        Kind.LABEL,
        "1 if the customer left within the next quarter.",
        dtype="int64",
        categories=("0", "1"),
    ),
)

BY_NAME: Final[dict[str, Column]] = {c.name: c for c in COLUMNS}
ID: Final[str] = next(c.name for c in COLUMNS if c.kind is Kind.ID)
LABEL: Final[str] = next(c.name for c in COLUMNS if c.kind is Kind.LABEL)
FEATURES: Final[tuple[Column, ...]] = tuple(c for c in COLUMNS if c.is_feature)
NUMERIC_FEATURES: Final[tuple[str, ...]] = tuple(c.name for c in FEATURES if c.kind is Kind.NUMERIC)
CATEGORICAL_FEATURES: Final[tuple[str, ...]] = tuple(
    c.name for c in FEATURES if c.kind is Kind.CATEGORICAL and not c.ordered
)
ORDINAL_FEATURES: Final[tuple[str, ...]] = tuple(
    c.name for c in FEATURES if c.kind is Kind.CATEGORICAL and c.ordered
)
BOOLEAN_FEATURES: Final[tuple[str, ...]] = tuple(c.name for c in FEATURES if c.kind is Kind.BOOLEAN)
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in FEATURES)

# Cross-column rule: what has been billed so far is roughly tenure x monthly charge.
# Prices change over a customer's life, so allow a generous band around that product.
TOTAL_CHARGES_BAND: Final[tuple[float, float]] = (0.5, 1.6)
MIN_ROWS: Final[int] = 1


def _column_checks(col: Column) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.min is not None:
        checks.append(pa.Check.ge(col.min))
    if col.max is not None:
        checks.append(pa.Check.le(col.max))
    if col.kind is Kind.LABEL:
        checks.append(pa.Check.isin([int(v) for v in col.categories]))
    elif col.categories:
        checks.append(pa.Check.isin(list(col.categories)))
    if col.pattern:
        checks.append(pa.Check.str_matches(col.pattern))
    if col.dtype == "float64":
        checks.append(pa.Check(lambda s: ~s.isin([float("inf"), float("-inf")]), name="finite"))
    if col.dtype == "bool":
        # Not coerced (see `_keep_values_intact`): anything that is not a boolean is an error.
        checks.append(
            pa.Check(lambda v: isinstance(v, bool | np.bool_), element_wise=True, name="is_boolean")
        )
    if col.nullable:
        limit = col.max_null_fraction
        checks.append(
            pa.Check(
                # Compared as counts so that an empty table is not also a null-rate failure.
                lambda s, limit=limit: s.isna().sum() <= limit * len(s),
                element_wise=False,
                ignore_na=False,
                name=f"null_fraction<={limit}",
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


def _keep_values_intact(df: pd.DataFrame) -> pd.DataFrame:
    """Runs before dtype coercion, so that coercion can never silently change a value.

    Casting to int64 truncates 0.5 to 0 and casting to bool turns any text (even "False")
    into True. So whole-number columns get their fractional values as text, which then fails
    coercion with the row and value named; boolean columns are not coerced but parsed here,
    and the `is_boolean` check rejects whatever is left that is not a boolean.
    """
    changed: dict[str, pd.Series] = {}
    for name in df.columns:
        col = BY_NAME.get(str(name))
        s = df[name]
        if col is None or str(s.dtype) == col.dtype:
            continue
        if col.dtype == "int64" and not pd.api.types.is_integer_dtype(s.dtype):
            numbers = pd.to_numeric(s, errors="coerce")
            fractional = numbers.notna() & (numbers % 1 != 0)
            if fractional.any():
                changed[str(name)] = s.astype(object).where(~fractional, s.astype(str))
        elif col.dtype == "bool":
            changed[str(name)] = s.astype(object).map(_as_boolean)
    return df.assign(**changed) if changed else df


def _total_charges_consistent(df: pd.DataFrame) -> pd.Series:
    """Rows where total_charges is within the band around tenure x monthly_charges."""
    low, high = TOTAL_CHARGES_BAND
    expected = df["tenure_months"] * df["monthly_charges"]
    total = df["total_charges"]
    # A customer in the first month may have been billed up to one month already.
    ok = (total >= low * expected - df["monthly_charges"]) & (
        total <= high * expected + df["monthly_charges"]
    )
    return ok | total.isna()


def build_schema(*, with_label: bool = True) -> pa.DataFrameSchema:
    """The pandera schema of the customer table (without the label for scoring data)."""
    columns = {
        c.name: pa.Column(
            c.dtype,
            checks=_column_checks(c),
            nullable=c.nullable,
            unique=c.kind is Kind.ID,
            coerce=c.dtype != "bool",
            description=c.description,
            title=c.name,
        )
        for c in COLUMNS
        if with_label or c.kind is not Kind.LABEL
    }
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(lambda df: len(df) >= MIN_ROWS, name=f"at_least_{MIN_ROWS}_rows"),
            pa.Check(
                _total_charges_consistent,
                name=(
                    f"total_charges_within_{TOTAL_CHARGES_BAND[0]}x_to_"
                    f"{TOTAL_CHARGES_BAND[1]}x_of_tenure_months_x_monthly_charges"
                ),
            ),
        ],
        parsers=[pa.Parser(_keep_values_intact)],
        strict=True,
        name="customers",
    )


CUSTOMERS: Final[pa.DataFrameSchema] = build_schema()
