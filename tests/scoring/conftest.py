"""What the scoring tests share: a small model trained with the pipeline's own functions, the
team's rows as a table to score (no label), the same table without an id column, and the
corruptions that break one record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops_template.core.model import (
    CARD_FILE,
    MODEL_FILE,
    LoadedModel,
    load_model,
    package_model,
    write_model,
)
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Kind, Table
from mlops_template.pipeline.train import train_model
from tests.support import Corrupt, corruptions, fast_changes, params_with, raw_params, set_dotted
from tests.support import team_table as team_rows

TRAIN_ROWS = 2000
BASE_ROWS = 600
INPUTS = {c.name for c in TABLE.input_columns}
# Rules about many rows, not one record: a duplicate id or a column's share of nulls is not
# a reason to refuse to score a record (the service applies the same rules).
NOT_ONE_RECORDS = ("-duplicate", "-too-many-nulls")
TOLERATED = 0.5  # score.max_invalid_share of the tests that quarantine one record per case


@dataclass(frozen=True)
class Trained:
    model: LoadedModel
    path: Path
    card: Path

    @property
    def files(self) -> tuple[Path, Path]:
        return self.path, self.card


@pytest.fixture(scope="session")
def score_params() -> Params:
    """Fast training params; small chunks, so that chunks and files never line up; half of
    the records may be invalid (the tests break one record per corruption the schema implies:
    a few dozen of 600 for the sample, about 150 for a table of 30 measurements)."""
    return params_with(
        {**fast_changes(TRAIN_ROWS), "score.chunk_rows": 97, "score.max_invalid_share": TOLERATED}
    )


@pytest.fixture(scope="session")
def trained(score_params: Params, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    directory = tmp_path_factory.mktemp("scoring-model")
    train = team_rows(score_params, TRAIN_ROWS, seed=1)
    estimator = train_model(train, score_params)
    path, card = directory / MODEL_FILE, directory / CARD_FILE
    write_model(*package_model(estimator, score_params.model, len(train)), path, card)
    return Trained(load_model(path, card), path, card)


@pytest.fixture(scope="session")
def base(score_params: Params) -> pd.DataFrame:
    """Valid records to score, as a campaign has them: the team's rows without the label."""
    rows = team_rows(score_params, BASE_ROWS, seed=2)
    return rows.drop(columns=[TABLE.label.name]).reset_index(drop=True)


def without_id(table: Table = TABLE) -> Table:
    """The team's table with its id column left out: records are keyed by row number."""
    return replace(
        table,
        columns=tuple(c for c in table.columns if c.kind is not Kind.ID),
        checks=(),
    )


def one_record_corruptions() -> list[Corrupt]:
    """The schema's corruptions that break one record of an input column (one row each)."""
    return [
        c
        for c in corruptions()
        if c.column in INPUTS and not c.id.endswith(NOT_ONE_RECORDS) and c.id != "missing-column"
    ]


def params_file(directory: Path, changes: dict[str, object]) -> Path:
    """params.yaml with `changes`, for a command run with `--params`."""
    path = directory / "params.yaml"
    path.write_text(yaml.safe_dump(set_dotted(raw_params(), changes)), encoding="utf-8")
    return path
