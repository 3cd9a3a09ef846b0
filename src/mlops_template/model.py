"""The model: how it is built, saved with its hash, and loaded only after that hash checks out.

Training and serving both import this module, so there is one way to turn a customer table
into features and one way to trust a model file.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from mlops_template import schema, storage
from mlops_template.business import profit_scorer
from mlops_template.params import Business, Model, Threshold

log = logging.getLogger(__name__)


class ModelIntegrityError(RuntimeError):
    """A model file does not match the hash recorded when it was trained."""


def _numeric_columns() -> list[str]:
    return [*schema.NUMERIC_FEATURES, *schema.BOOLEAN_FEATURES]


def build_preprocessor() -> ColumnTransformer:
    """Features from the schema: impute + scale numbers, encode categories.

    The id and the label are not listed, so they can never reach the model. Unseen
    categories at prediction time become all-zero one-hot rows (or the most frequent level
    of an ordered category) instead of errors.
    """
    ordinal_categories = [list(schema.BY_NAME[c].categories) for c in schema.ORDINAL_FEATURES]
    transformer = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                _numeric_columns(),
            ),
            (
                "ordinal",
                make_pipeline(
                    OrdinalEncoder(
                        categories=ordinal_categories,
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                    ),
                    SimpleImputer(strategy="most_frequent"),
                ),
                list(schema.ORDINAL_FEATURES),
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                list(schema.CATEGORICAL_FEATURES),
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    return transformer.set_output(transform="pandas")


def build_classifier(cfg: Model) -> HistGradientBoostingClassifier | LogisticRegression:
    if cfg.kind == "hist_gradient_boosting":
        hgb = cfg.hist_gradient_boosting
        return HistGradientBoostingClassifier(
            learning_rate=hgb.learning_rate,
            max_iter=hgb.max_iter,
            max_leaf_nodes=hgb.max_leaf_nodes,
            min_samples_leaf=hgb.min_samples_leaf,
            l2_regularization=hgb.l2_regularization,
            monotonic_cst=dict(cfg.monotonic) or None,
            early_stopping=False,
            random_state=cfg.seed,
        )
    lr = cfg.logistic_regression
    return LogisticRegression(C=lr.C, max_iter=lr.max_iter, random_state=cfg.seed)


def build_model(
    model: Model, business: Business, threshold: Threshold
) -> TunedThresholdClassifierCV:
    """Preprocessing + classifier, with the decision threshold tuned for expected profit."""
    pipeline = Pipeline(
        [("features", build_preprocessor()), ("classifier", build_classifier(model))]
    )
    return TunedThresholdClassifierCV(
        pipeline,
        scoring=profit_scorer(business),
        cv=StratifiedKFold(threshold.cv_folds, shuffle=True, random_state=model.seed),
        random_state=model.seed,
    )


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the model sees, in schema order."""
    return frame.loc[:, list(schema.FEATURE_NAMES)]


def model_version(sha256: str) -> str:
    """A model's short version: the first 12 hex digits of its file's sha256."""
    return sha256[:12]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    estimator: TunedThresholdClassifierCV
    sha256: str
    threshold: float

    @property
    def version(self) -> str:
        return model_version(self.sha256)

    def churn_probability(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(features(frame))[:, 1])

    def decide(self, probability: np.ndarray) -> np.ndarray:
        # TunedThresholdClassifierCV predicts the positive class when proba >= threshold.
        return np.asarray(probability >= self.threshold)


def dump_model(estimator: Any) -> bytes:
    """Serialise a fitted model; the same fitted model always gives the same bytes."""
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=3)
    return buffer.getvalue()


def save_model(estimator: TunedThresholdClassifierCV, path: str | Path) -> str:
    """Write the model file atomically; return its sha256."""
    payload = dump_model(estimator)
    storage.write_bytes(path, lambda tmp: tmp.write_bytes(payload))
    return storage.sha256_file(path)


def model_metadata(
    estimator: TunedThresholdClassifierCV, sha256: str, cfg: Model, n_train: int
) -> dict[str, Any]:
    return {
        "sha256": sha256,
        "version": model_version(sha256),
        "kind": cfg.kind,
        "threshold": float(estimator.best_threshold_),
        "expected_profit_cv": float(estimator.best_score_),
        "features": list(schema.FEATURE_NAMES),
        "n_train": n_train,
        "sklearn_version": sklearn.__version__,
    }


def load_model(path: str | Path, card_path: str | Path) -> LoadedModel:
    """Load a model file, but only if its sha256 equals the one in its model card."""
    card = storage.read_json(card_path)
    expected = card.get("sha256") if isinstance(card, dict) else None
    if not isinstance(expected, str):
        raise ModelIntegrityError(f"{card_path}: no 'sha256' recorded; refusing to load {path}")
    try:
        actual = storage.sha256_file(path)
    except FileNotFoundError:
        raise ModelIntegrityError(f"{path}: model file not found") from None
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: sha256 {actual} does not match {expected} recorded in {card_path}; "
            "the file was changed after training. Refusing to load it (re-run `dvc repro` "
            "or `dvc pull` to restore the trained model)."
        )
    # Safe to unpickle: the bytes are exactly the ones the training stage wrote.
    estimator = joblib.load(path)
    return LoadedModel(estimator=estimator, sha256=actual, threshold=float(card["threshold"]))
