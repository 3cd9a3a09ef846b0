"""THE scoring function on small frames of the team's rows: every way the schema says one
record can be wrong sets apart that record alone, with a reason naming the column, the check
and the value; the other records are scored exactly as without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.core.model import load_model
from mlops_template.core.schema import TABLE
from mlops_template.core.table import ROW_KEY
from mlops_template.scoring.score import COLUMNS, CONTACT, PROBABILITY, REASON, score_chunk
from tests.scoring.conftest import Trained, one_record_corruptions, without_id
from tests.support import Corrupt, corruptions

pytestmark = pytest.mark.data

ROWS = 40


@pytest.fixture(scope="module")
def small(base: pd.DataFrame) -> pd.DataFrame:
    return base.head(ROWS).copy()


def test_a_valid_chunk_is_scored_like_the_model_scores_it(
    small: pd.DataFrame, trained: Trained
) -> None:
    result = score_chunk(small, trained.model, np.arange(ROWS))
    assert result.quarantine.empty
    assert list(result.scores.columns) == [TABLE.key, PROBABILITY, CONTACT]
    expected = trained.model.probability(small)
    assert np.array_equal(result.scores[PROBABILITY].to_numpy(), expected)
    assert np.array_equal(result.scores[CONTACT].to_numpy(), expected >= trained.model.threshold)
    assert result.scores[TABLE.key].tolist() == TABLE.keys(small)


@pytest.mark.parametrize("case", one_record_corruptions(), ids=lambda c: c.id)
def test_one_bad_record_is_quarantined_with_its_reason(
    case: Corrupt, small: pd.DataFrame, trained: Trained
) -> None:
    bad = case.apply(small)
    result = score_chunk(bad, trained.model, np.arange(ROWS))
    assert len(result.quarantine) == 1, f"{case.id}: expected exactly one quarantined record"
    record = result.quarantine.iloc[0]
    assert case.column in record[COLUMNS], record[REASON]
    assert record[REASON].startswith(f"{case.column}: "), record[REASON]
    assert case.text in record[REASON], f"{case.id}: {case.text!r} not in {record[REASON]!r}"
    # The first row is the broken one; every other row is scored as if it were alone.
    good = trained.model.probability(small.iloc[1:])
    assert np.array_equal(result.scores[PROBABILITY].to_numpy(), good), case.id
    if TABLE.id is not None:
        given = bad[TABLE.id.name].iloc[0]
        assert record[TABLE.key] == (None if pd.isna(given) else str(given))


@pytest.mark.parametrize(
    "case",
    [c for c in corruptions() if c.id.endswith(("-duplicate", "-too-many-nulls", "extra-column"))],
    ids=lambda c: c.id,
)
def test_rules_about_many_rows_set_no_record_apart(
    case: Corrupt, small: pd.DataFrame, trained: Trained
) -> None:
    result = score_chunk(case.apply(small), trained.model, np.arange(ROWS))
    assert result.quarantine.empty, result.quarantine[REASON].tolist()
    assert len(result.scores) == ROWS


def test_columns_outside_the_contract_are_ignored(small: pd.DataFrame, trained: Trained) -> None:
    extra = small.assign(**{TABLE.label.name: "not even a label", "__export_date__": "2026"})
    result = score_chunk(extra[::-1].reset_index(drop=True), trained.model, np.arange(ROWS))
    assert result.quarantine.empty
    expected = trained.model.probability(small[::-1])
    assert np.array_equal(result.scores[PROBABILITY].to_numpy(), expected)


def test_a_missing_nullable_column_is_scored_as_unknown(
    small: pd.DataFrame, trained: Trained
) -> None:
    nullable = [c for c in TABLE.input_columns if c.nullable]
    if not nullable:
        pytest.skip("the schema has no nullable input column")
    name = nullable[0].name
    result = score_chunk(small.drop(columns=[name]), trained.model, np.arange(ROWS))
    unknown = small.assign(**{name: np.nan if nullable[0].dtype == "float64" else None})
    assert result.quarantine.empty
    assert np.array_equal(result.scores[PROBABILITY].to_numpy(), trained.model.probability(unknown))


def test_without_an_id_the_key_is_the_row_number_in_the_input(
    small: pd.DataFrame, trained: Trained
) -> None:
    table = without_id()
    model = load_model(trained.path, trained.card, table)
    case = next(c for c in one_record_corruptions() if c.column != TABLE.key)
    rows = np.arange(1000, 1000 + ROWS)
    result = score_chunk(case.apply(small).iloc[::-1], model, rows[::-1].copy())
    assert table.key == ROW_KEY
    assert result.quarantine[ROW_KEY].tolist() == [1000]  # row 0 of the chunk, given last
    assert result.scores[ROW_KEY].tolist() == list(rows[:0:-1])
    with pytest.raises(ValueError, match="row number"):
        score_chunk(small, model)
