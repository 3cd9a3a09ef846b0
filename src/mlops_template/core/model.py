"""The model: how it is built, saved with its hash and card, and loaded only when both check out.

Training, evaluation, the pull-request report, batch scoring and the service all go through
`load_model` and `LoadedModel.probability`, so there is one way to turn a table into the
model's input and one way to trust a model file.

The model file holds scikit-learn objects only (no class of this package), so any process
with scikit-learn can unpickle it, after checking its sha256. Its input is `Table.encode`:
categories as their position in the schema's list (so gradient boosting splits on them
natively, and handles missing values itself), booleans as 0/1, numbers as they are.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import joblib
import numpy as np
import pandas as pd
import sklearn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_template.core import io as files
from mlops_template.core.business import profit_scorer
from mlops_template.core.errors import InputError, ModelIntegrityError
from mlops_template.core.metrics import decide
from mlops_template.core.params import Business, Model, Threshold
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Kind, Table, Value

log = logging.getLogger(__name__)
VERSION_LENGTH = 12  # a model's version: this many hex digits of its file's sha256
# The names of a model file and its card inside a directory that holds one model (a Spark
# worker's copy, a model store entry); the pipeline's own paths come from params.yaml.
MODEL_FILE: Final = "model.joblib"
CARD_FILE: Final = "model_card.json"


def model_version(sha256: str) -> str:
    return sha256[:VERSION_LENGTH]


def encoding(table: Table) -> list[dict[str, Any]]:
    """What the model's input columns mean: the card records it, loading compares it."""
    out: list[dict[str, Any]] = []
    for col in table.features:
        entry: dict[str, Any] = {"name": col.name, "kind": str(col.kind)}
        if col.kind is Kind.CATEGORICAL:
            entry["categories"] = list(col.categories)
            entry["ordered"] = col.ordered
        out.append(entry)
    return out


class ModelCard(BaseModel):
    """What training recorded about a model file; written next to it as JSON."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sha256: str = Field(description="sha256 of the model file, checked before every load.")
    version: str = Field(description=f"The first {VERSION_LENGTH} hex digits of sha256.")
    kind: str = Field(description="The estimator (params.yaml model.kind).")
    threshold: float = Field(description="Contact when the probability is at least this.")
    expected_profit_cv: float = Field(description="Cross-validated profit at the threshold.")
    features: tuple[str, ...] = Field(description="The model's input columns, in order.")
    n_train: int = Field(description="Training rows.")
    sklearn_version: str
    label: str | None = Field(default=None, description="The label column it predicts.")
    positive: Value | None = Field(default=None, description="The label value it predicts.")
    encoding: list[dict[str, Any]] | None = Field(
        default=None, description="How each input column is encoded (categories in order)."
    )

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        raw = files.read_json(path)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise InputError(f"{path}: not a model card ({exc.error_count()} problems)") from None

    def write(self, path: str | Path) -> None:
        files.write_json(path, self.model_dump(mode="json"))


# --- building ----------------------------------------------------------------------------


def build_classifier(cfg: Model, table: Table) -> Any:
    """The estimator on the encoded table (`Table.encode`: a float matrix, features in order).

    It is fitted on the bare matrix, not a frame: predicting from a frame costs scikit-learn a
    check of its column names on every call (more than the trees for one record), and the
    card records what each column is instead.
    """
    mask = list(table.categorical_mask)
    categorical = [j for j, cat in enumerate(mask) if cat]
    ordered = [j for j, cat in enumerate(mask) if not cat]
    if cfg.kind == "hist_gradient_boosting":
        hgb = cfg.hist_gradient_boosting
        monotonic = [cfg.monotonic.get(name, 0) for name in table.feature_names]
        return HistGradientBoostingClassifier(
            learning_rate=hgb.learning_rate,
            max_iter=hgb.max_iter,
            max_leaf_nodes=hgb.max_leaf_nodes,
            min_samples_leaf=hgb.min_samples_leaf,
            l2_regularization=hgb.l2_regularization,
            categorical_features=mask if categorical else None,
            monotonic_cst=monotonic if any(monotonic) else None,
            early_stopping=False,
            random_state=cfg.seed,
        )
    # A linear model needs what the trees do by themselves: imputed, scaled numbers and
    # one-hot categories (an unseen or missing category is an all-zero row).
    lr = cfg.logistic_regression
    features = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                ordered,
            ),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ],
        remainder="drop",
    )
    return Pipeline(
        [
            ("features", features),
            ("classifier", LogisticRegression(C=lr.C, max_iter=lr.max_iter, random_state=cfg.seed)),
        ]
    )


def build_model(
    model: Model, business: Business, threshold: Threshold, table: Table = TABLE
) -> TunedThresholdClassifierCV:
    """The classifier, with its decision threshold tuned for expected profit."""
    return TunedThresholdClassifierCV(
        build_classifier(model, table),
        scoring=profit_scorer(business),
        cv=StratifiedKFold(threshold.cv_folds, shuffle=True, random_state=model.seed),
        random_state=model.seed,
    )


def dump_model(estimator: Any) -> bytes:
    """Serialise a fitted model; the same fitted model always gives the same bytes."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


def package_model(
    estimator: TunedThresholdClassifierCV, cfg: Model, n_train: int, table: Table = TABLE
) -> tuple[bytes, ModelCard]:
    """The model file's bytes and its card (nothing is written yet)."""
    payload = dump_model(estimator)
    sha256 = files.sha256_bytes(payload)
    card = ModelCard(
        sha256=sha256,
        version=model_version(sha256),
        kind=cfg.kind,
        threshold=float(estimator.best_threshold_),
        expected_profit_cv=float(estimator.best_score_),
        features=table.feature_names,
        n_train=n_train,
        sklearn_version=sklearn.__version__,
        label=table.label.name,
        positive=table.label.positive,
        encoding=encoding(table),
    )
    return payload, card


def write_model(payload: bytes, card: ModelCard, path: str | Path, card_path: str | Path) -> None:
    """Write the model file and its card so that they always match: both go to temporary
    files first, then are renamed into place one right after the other, with the stop
    signals held off (`io.atomic_paths`). After a stop neither is replaced; when the card's
    rename fails, the previous model file is put back."""
    with files.atomic_paths(path, card_path) as (tmp_model, tmp_card):
        tmp_model.write_bytes(payload)
        tmp_card.write_text(files.dumps_json(card.model_dump(mode="json")), encoding="utf-8")


# --- loading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A model file that passed its checks, with the card that describes it."""

    estimator: TunedThresholdClassifierCV
    card: ModelCard
    table: Table = field(default=TABLE, repr=False)

    @property
    def sha256(self) -> str:
        return self.card.sha256

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive label) for each row of `frame` (a table with at least the features)."""
        if self.card.encoding is None:
            # A model from before the card recorded its encoding took the raw columns; the
            # pull-request report and the audit still score such older models.
            inputs: Any = frame.loc[:, list(self.card.features)]
        else:
            inputs = self.table.encode(frame)
        return np.asarray(self.estimator.predict_proba(inputs)[:, 1])

    def probability_of_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """`probability` of records given as mappings, without building a frame: the same
        numbers, bit for bit (the service's hot path)."""
        if self.card.encoding is None:
            return self.probability(pd.DataFrame.from_records(list(rows)))
        return np.asarray(self.estimator.predict_proba(self.table.encode_rows(rows))[:, 1])

    def decide(self, probability: np.ndarray) -> np.ndarray:
        return decide(probability, self.threshold)


def verify_file(path: str | Path, card: ModelCard, card_path: str | Path) -> None:
    """The model file exists and has the sha256 its card records (nothing is unpickled)."""
    try:
        actual = files.sha256_file(path)
    except FileNotFoundError:
        raise ModelIntegrityError(f"{path}: model file not found") from None
    if actual != card.sha256:
        raise ModelIntegrityError(
            f"{path}: sha256 {actual} does not match {card.sha256} recorded in {card_path}; "
            "the file was changed after training. Refusing to load it (re-run `dvc repro` "
            "or `dvc pull` to restore the trained model)."
        )
    if card.version != model_version(card.sha256):
        raise ModelIntegrityError(f"{card_path}: version {card.version} is not its sha256's")


def check_fits(estimator: Any, card: ModelCard, card_path: str | Path, table: Table) -> None:
    """The unpickled model is the one the card describes, and the schema still encodes its
    input the way it was trained (the same features, the same category order)."""
    threshold = float(estimator.best_threshold_)
    if threshold != card.threshold:
        raise ModelIntegrityError(
            f"{card_path}: threshold {card.threshold} differs from the model's own "
            f"{threshold}; the card was edited. Refusing to serve it."
        )
    trained = tuple(str(n) for n in getattr(estimator, "feature_names_in_", card.features))
    width = getattr(estimator, "n_features_in_", len(card.features))
    if (
        trained != table.feature_names
        or card.features != table.feature_names
        or width != len(table.feature_names)
        or (card.encoding is not None and card.encoding != encoding(table))
    ):
        raise ModelIntegrityError(
            f"{card_path}: the model was trained on features {list(trained)} encoded as "
            f"recorded in its card; the schema now declares {list(table.feature_names)} "
            "or other categories. Retrain (`dvc repro`) after changing the schema."
        )


def require_model_files(path: Path, card: Path) -> None:
    """The pipeline's model file and its card are there. They are DVC outputs, not in git: a
    fresh clone has neither until the pipeline has run or they have been pulled."""
    missing = [str(p) for p in (path, card) if not p.is_file()]
    if missing:
        raise InputError(
            f"{' and '.join(missing)} not found: the model is a DVC output, not in git. Run "
            "`make run` (train it) or `make pull` (download it from the DVC remote) first"
        )


def load_model(path: str | Path, card_path: str | Path, table: Table = TABLE) -> LoadedModel:
    """Load a model file, but only if its sha256 equals the one in its model card."""
    try:
        card = ModelCard.read(card_path)
    except InputError as exc:
        raise ModelIntegrityError(f"{exc}; refusing to load {path}") from None
    verify_file(path, card, card_path)
    # Safe to unpickle: the bytes are exactly the ones the training stage wrote.
    estimator = joblib.load(path)
    check_fits(estimator, card, card_path, table)
    return LoadedModel(estimator=estimator, card=card, table=table)
