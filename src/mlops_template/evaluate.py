"""Stage 5, evaluate: score the held-out test set in business and ML terms.

Writes `paths.metrics` (git-tracked, read by the gate and the PR report) and the DVC plots
under `paths.plots`: ROC, precision-recall, calibration, confusion matrix and permutation
feature importance.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from mlops_template import business, cli, schema, storage
from mlops_template.model import LoadedModel, ModelIntegrityError, features, load_model
from mlops_template.params import Business, Evaluate, Params

log = logging.getLogger(__name__)


def _r(x: float) -> float:
    return round(float(x), 6)


def business_metrics(y: np.ndarray, contact: np.ndarray, cfg: Business) -> dict[str, float]:
    profit = business.contact_profit(y, contact, cfg)
    base = business.baselines(y, cfg)
    return {
        "expected_profit": _r(profit),
        "profit_per_customer": _r(profit / len(y)),
        "profit_contact_all": _r(base["contact_all"]),
        "profit_contact_none": _r(base["contact_none"]),
        "profit_vs_contact_all": _r(profit - base["contact_all"]),
        "profit_vs_contact_none": _r(profit - base["contact_none"]),
        "contact_rate": _r(contact.mean()),
        "break_even_precision": _r(business.break_even_precision(cfg)),
    }


def ml_metrics(y: np.ndarray, proba: np.ndarray, contact: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": _r(roc_auc_score(y, proba)),
        "pr_auc": _r(average_precision_score(y, proba)),
        "precision": _r(precision_score(y, contact, zero_division=0)),
        "recall": _r(recall_score(y, contact, zero_division=0)),
        "f1": _r(f1_score(y, contact, zero_division=0)),
        "brier": _r(brier_score_loss(y, proba)),
        "log_loss": _r(log_loss(y, proba, labels=[0, 1])),
        "positive_rate": _r(y.mean()),
    }


def segment_metrics(
    test: pd.DataFrame, proba: np.ndarray, contact: np.ndarray, cfg: Evaluate, money: Business
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-segment metrics for groups of at least `cfg.min_segment_size` rows."""
    y = test[schema.LABEL].to_numpy()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in cfg.segments:
        groups: dict[str, dict[str, float]] = {}
        for value, index in test.groupby(column, sort=True).indices.items():
            ys, ps, cs = y[index], proba[index], contact[index]
            if len(index) < cfg.min_segment_size or len(np.unique(ys)) < 2:
                continue
            groups[str(value)] = {
                "n": len(index),
                "positive_rate": _r(ys.mean()),
                "roc_auc": _r(roc_auc_score(ys, ps)),
                "precision": _r(precision_score(ys, cs, zero_division=0)),
                "recall": _r(recall_score(ys, cs, zero_division=0)),
                "profit_per_customer": _r(business.contact_profit(ys, cs, money) / len(ys)),
            }
        out[column] = groups
    return out


def score_metrics(
    test: pd.DataFrame, proba: np.ndarray, model: LoadedModel, params: Params
) -> dict[str, Any]:
    """All metrics of scores `proba` (the model's on `test`) at the model's threshold."""
    y = test[schema.LABEL].to_numpy()
    contact = model.decide(proba)
    return {
        "n_test": len(test),
        "threshold": _r(model.threshold),
        "business": business_metrics(y, contact, params.business),
        "ml": ml_metrics(y, proba, contact),
        "segments": segment_metrics(test, proba, contact, params.evaluate, params.business),
    }


def evaluate_model(test: pd.DataFrame, model: LoadedModel, params: Params) -> dict[str, Any]:
    """All metrics of `model` on `test` at the model's tuned threshold."""
    return score_metrics(test, model.churn_probability(test), model, params)


def _thin(frame: pd.DataFrame, points: int) -> list[dict[str, float]]:
    """At most `points` evenly spaced rows of a curve (always keeping both ends)."""
    if len(frame) > points:
        frame = frame.iloc[np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))]
    return [{str(k): _r(v) for k, v in row.items()} for row in frame.to_dict("records")]


def plot_data(
    test: pd.DataFrame, proba: np.ndarray, model: LoadedModel, cfg: Evaluate, seed: int
) -> dict[str, Any]:
    """The data behind each DVC plot (scores `proba` of `model` on `test`), by file name."""
    y = test[schema.LABEL].to_numpy()
    fpr, tpr, _ = roc_curve(y, proba)
    precision, recall, _ = precision_recall_curve(y, proba)
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=cfg.calibration_bins)
    sample = test.sample(n=min(len(test), cfg.importance_max_rows), random_state=seed)
    importance = permutation_importance(
        model.estimator,
        features(sample),
        sample[schema.LABEL].to_numpy(),
        scoring="roc_auc",
        n_repeats=cfg.importance_repeats,
        random_state=seed,
    )
    ranked = sorted(
        zip(
            schema.FEATURE_NAMES,
            importance.importances_mean,
            importance.importances_std,
            strict=True,
        ),
        key=lambda item: -item[1],
    )
    return {
        "roc.json": _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}), cfg.curve_points),
        "precision_recall.json": _thin(
            pd.DataFrame({"recall": recall, "precision": precision}), cfg.curve_points
        ),
        "calibration.json": _thin(
            pd.DataFrame({"mean_predicted": mean_pred, "fraction_positive": frac_pos}),
            cfg.curve_points,
        ),
        "importance.json": [
            {"feature": f, "importance": _r(m), "std": _r(s)} for f, m, s in ranked
        ],
        "confusion.csv": pd.DataFrame(
            {"actual": y.astype(int), "predicted": model.decide(proba).astype(int)}
        ),
    }


def write_plots(plots: dict[str, Any], directory: str | Path) -> None:
    directory = Path(directory)
    for name, payload in plots.items():
        if isinstance(payload, pd.DataFrame):
            data = payload.to_csv(index=False).encode()
            storage.write_bytes(directory / name, partial(Path.write_bytes, data=data))
        else:
            storage.write_json(directory / name, payload)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--card", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True, help="directory for the plot data files")


def _main(args: argparse.Namespace, params: Params) -> None:
    test = storage.read_table(args.test)
    model = load_model(args.model, args.card)
    proba = model.churn_probability(test)  # once: metrics and plots share it
    metrics = score_metrics(test, proba, model, params)
    log.info(
        "computing plots (permutation importance on up to %s rows)",
        f"{params.evaluate.importance_max_rows:,}",
    )
    plots = plot_data(test, proba, model, params.evaluate, params.model.seed)
    write_plots(plots, args.plots)
    storage.write_json(args.metrics, metrics)
    b, m = metrics["business"], metrics["ml"]
    log.info(
        "ROC AUC %.4f, expected profit %.0f (contact all: %.0f)",
        m["roc_auc"],
        b["expected_profit"],
        b["profit_contact_all"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("evaluate", _args, _main, __doc__, argv, extra_errors=(ModelIntegrityError,))


if __name__ == "__main__":
    raise SystemExit(main())
