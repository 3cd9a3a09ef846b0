"""Train/test split: sizes, stratification, no record in both (on a hand-made table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.params import Split
from mlops_template.core.table import Column, Kind, Label, Table
from mlops_template.pipeline.split import split_table

pytestmark = pytest.mark.unit


TABLE = Table(
    "t",
    (Column("key", Kind.ID, "id", dtype="str"), Column("x", Kind.NUMERIC, "a number")),
    Label("y", positive="yes", negative="no", description="outcome"),
)
ID, LABEL = "key", "y"


def split_customers(frame: pd.DataFrame, cfg: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_table(frame, cfg, TABLE)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1000
    return pd.DataFrame(
        {
            ID: [f"K{i}" for i in range(n)],
            "x": rng.normal(size=n),
            LABEL: np.where(np.arange(n) % 5 == 0, "yes", "no"),  # exactly 20 % positive
        }
    )


def test_sizes_and_no_overlap(frame: pd.DataFrame) -> None:
    train, test = split_customers(frame, Split(test_size=0.2, seed=1, stratify=True))
    assert (len(train), len(test)) == (800, 200)
    ids_train, ids_test = set(train[ID]), set(test[ID])
    assert not ids_train & ids_test
    assert ids_train | ids_test == set(frame[ID])


def test_stratified_split_keeps_the_label_rate(frame: pd.DataFrame) -> None:
    train, test = split_customers(frame, Split(test_size=0.2, seed=1, stratify=True))
    assert (train[LABEL] == "yes").mean() == pytest.approx(0.2)
    assert (test[LABEL] == "yes").mean() == pytest.approx(0.2)


def test_unstratified_split_works_and_seed_decides(frame: pd.DataFrame) -> None:
    cfg = Split(test_size=0.3, seed=7, stratify=False)
    train_a, test_a = split_customers(frame, cfg)
    train_b, _ = split_customers(frame, cfg)
    _, test_c = split_customers(frame, Split(test_size=0.3, seed=8, stratify=False))
    assert len(test_a) == 300
    pd.testing.assert_frame_equal(train_a, train_b)
    assert set(test_a[ID]) != set(test_c[ID])


def test_split_returns_fresh_indexes_and_leaves_input_alone(frame: pd.DataFrame) -> None:
    before = frame.copy()
    train, test = split_customers(frame, Split(test_size=0.2, seed=1, stratify=True))
    assert list(train.index) == list(range(len(train)))
    assert list(test.index) == list(range(len(test)))
    pd.testing.assert_frame_equal(frame, before)
