"""Every number in `reports/metrics.json`, computed from labels, scores and a threshold.

The evaluate stage, the pull-request report's like-for-like re-scoring and monitoring all
call `score_metrics`, so a metric is computed one way everywhere. What each key means and
which way is better lives in `catalog.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from mlops_template.core import business
from mlops_template.core.params import Business, Evaluate


def rounded(x: float) -> float:
    """Metrics are stored with 6 decimals: enough for any report, stable across platforms."""
    return round(float(x), 6)


def business_metrics(y: np.ndarray, contact: np.ndarray, cfg: Business) -> dict[str, float]:
    profit = business.contact_profit(y, contact, cfg)
    base = business.baselines(y, cfg)
    return {
        "expected_profit": rounded(profit),
        "profit_per_record": rounded(profit / len(y)),
        "profit_contact_all": rounded(base["contact_all"]),
        "profit_contact_none": rounded(base["contact_none"]),
        "profit_vs_contact_all": rounded(profit - base["contact_all"]),
        "profit_vs_contact_none": rounded(profit - base["contact_none"]),
        "contact_rate": rounded(contact.mean()),
        "break_even_precision": rounded(business.break_even_precision(cfg)),
    }


def ml_metrics(y: np.ndarray, proba: np.ndarray, contact: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": rounded(roc_auc_score(y, proba)),
        "pr_auc": rounded(average_precision_score(y, proba)),
        "precision": rounded(precision_score(y, contact, zero_division=0)),
        "recall": rounded(recall_score(y, contact, zero_division=0)),
        "f1": rounded(f1_score(y, contact, zero_division=0)),
        "brier": rounded(brier_score_loss(y, proba)),
        "log_loss": rounded(log_loss(y, proba, labels=[0, 1])),
        "positive_rate": rounded(y.mean()),
    }


def segment_is_scored(y: np.ndarray, cfg: Evaluate) -> bool:
    """The one rule for which segments are scored and gated: enough rows of each class."""
    positives = int(y.sum())
    return len(y) >= cfg.min_segment_size and min(positives, len(y) - positives) >= (
        cfg.min_segment_class_count
    )


def segment_metrics(
    segments: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    contact: np.ndarray,
    cfg: Evaluate,
    money: Business,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per value of each `cfg.segments` column, for the segments `segment_is_scored` keeps."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in cfg.segments:
        groups: dict[str, dict[str, float]] = {}
        for value, index in segments.groupby(column, sort=True).indices.items():
            ys, ps, cs = y[index], proba[index], contact[index]
            if not segment_is_scored(ys, cfg):
                continue
            groups[str(value)] = {
                "n": len(index),
                "positive_rate": rounded(ys.mean()),
                "roc_auc": rounded(roc_auc_score(ys, ps)),
                "precision": rounded(precision_score(ys, cs, zero_division=0)),
                "recall": rounded(recall_score(ys, cs, zero_division=0)),
                "profit_per_record": rounded(business.contact_profit(ys, cs, money) / len(ys)),
            }
        out[column] = groups
    return out


def score_metrics(
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    segments: pd.DataFrame,
    evaluate: Evaluate,
    money: Business,
) -> dict[str, Any]:
    """All metrics of scores `proba` against labels `y` (1 = positive) at `threshold`.

    `segments` holds the `evaluate.segments` columns of the same rows.
    """
    contact = decide(proba, threshold)
    return {
        "n_test": len(y),
        "threshold": rounded(threshold),
        "business": business_metrics(y, contact, money),
        "ml": ml_metrics(y, proba, contact),
        "segments": segment_metrics(segments, y, proba, contact, evaluate, money),
    }


def decide(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Contact a record when its probability reaches the threshold (as scikit-learn's
    TunedThresholdClassifierCV predicts the positive class)."""
    return np.asarray(proba >= threshold)


def roc_points(y: np.ndarray, proba: np.ndarray) -> list[tuple[float, float]]:
    """The ROC curve as (false positive rate, true positive rate) points."""
    fpr, tpr, _ = roc_curve(y, proba)
    return [(float(f), float(t)) for f, t in zip(fpr, tpr, strict=True)]


def confusion_counts(pairs: Iterable[tuple[int, int]]) -> dict[str, int]:
    """tp / fp / fn / tn of (actual, decided) pairs."""
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for actual, predicted in pairs:
        key = ("t" if actual == predicted else "f") + ("p" if predicted else "n")
        counts[key] += 1
    return counts
