"""THE data contract: the table this project learns from, declared once.

This file and `params.yaml` are the two a team edits to use its own data (README, "Use your
own data"). Everything else derives from `TABLE`: validation, the model's features, the
service's request contract, drift and quality checks, the tests' data and corruptions.

The sample: telecom customers, and whether they churned within the next quarter.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from mlops_template.core.table import Column, Kind, Label, Table, TableCheck

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
)

LABEL: Final = Label(
    "churned", positive=1, negative=0, description="1 if the customer left within the next quarter."
)

# Cross-column rule: what has been billed so far is roughly tenure x monthly charge. Prices
# change over a customer's life, so allow a generous band around that product.
TOTAL_CHARGES_BAND: Final[tuple[float, float]] = (0.5, 1.6)


def _total_charges_consistent(df: pd.DataFrame) -> pd.Series:
    low, high = TOTAL_CHARGES_BAND
    expected = df["tenure_months"] * df["monthly_charges"]
    total = df["total_charges"]
    # A customer in the first month may have been billed up to one month already.
    ok = (total >= low * expected - df["monthly_charges"]) & (
        total <= high * expected + df["monthly_charges"]
    )
    return ok | total.isna()


def _break_total_charges(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    row = out.index[(out["tenure_months"] >= 12) & out["total_charges"].notna()][0]
    out.loc[row, "total_charges"] = np.float64(
        3 * out.loc[row, "tenure_months"] * out.loc[row, "monthly_charges"]
    )
    return out


TABLE: Final = Table(
    name="customers",
    columns=COLUMNS,
    label=LABEL,
    checks=(
        TableCheck(
            name=(
                f"total_charges_within_{TOTAL_CHARGES_BAND[0]}x_to_"
                f"{TOTAL_CHARGES_BAND[1]}x_of_tenure_months_x_monthly_charges"
            ),
            description="Billed so far is about tenure x monthly charge.",
            columns=("total_charges", "tenure_months", "monthly_charges"),
            passes=_total_charges_consistent,
            break_one_row=_break_total_charges,
        ),
    ),
)
