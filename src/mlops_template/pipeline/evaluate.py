"""Stage 5, evaluate: score the held-out test set in business and ML terms.

Writes `paths.metrics` (git-tracked, read by the gate and the PR report) and the DVC plots
under `paths.plots`: ROC, precision-recall, calibration, confusion matrix and permutation
feature importance.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import precision_recall_curve

from mlops_template.core import cli, metrics
from mlops_template.core import io as files
from mlops_template.core.model import LoadedModel, load_model
from mlops_template.core.params import Evaluate, Params

log = logging.getLogger(__name__)


def evaluate_model(test: pd.DataFrame, model: LoadedModel, params: Params) -> dict[str, Any]:
    """All metrics of `model` on `test` at the model's tuned threshold."""
    return score_test_set(test, model.probability(test), model, params)


def score_test_set(
    test: pd.DataFrame, proba: np.ndarray, model: LoadedModel, params: Params
) -> dict[str, Any]:
    """All metrics of scores `proba` (the model's, on `test`) at the model's threshold."""
    return metrics.score_metrics(
        model.table.target(test),
        proba,
        model.threshold,
        test.loc[:, list(params.evaluate.segments)],
        params.evaluate,
        params.business,
    )


def _thin(frame: pd.DataFrame, points: int) -> list[dict[str, float]]:
    """At most `points` evenly spaced rows of a curve (always keeping both ends)."""
    if len(frame) > points:
        frame = frame.iloc[np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))]
    return [
        {str(k): metrics.rounded(v) for k, v in row.items()} for row in frame.to_dict("records")
    ]


def importance(
    test: pd.DataFrame, model: LoadedModel, cfg: Evaluate, seed: int
) -> list[dict[str, Any]]:
    """Permutation importance (drop in ROC AUC) of each feature, most important first."""
    sample = test.sample(n=min(len(test), cfg.importance_max_rows), random_state=seed)
    result = permutation_importance(
        model.estimator,
        model.table.encode(sample),
        model.table.target(sample),
        scoring="roc_auc",
        n_repeats=cfg.importance_repeats,
        random_state=seed,
    )
    ranked = sorted(
        zip(
            model.table.feature_names, result.importances_mean, result.importances_std, strict=True
        ),
        key=lambda item: -item[1],
    )
    return [
        {"feature": f, "importance": metrics.rounded(m), "std": metrics.rounded(s)}
        for f, m, s in ranked
    ]


def plot_data(
    test: pd.DataFrame, proba: np.ndarray, model: LoadedModel, cfg: Evaluate, seed: int
) -> dict[str, Any]:
    """The data behind each DVC plot (scores `proba` of `model` on `test`), by file name."""
    y = model.table.target(test)
    roc = pd.DataFrame(metrics.roc_points(y, proba), columns=["fpr", "tpr"])
    precision, recall, _ = precision_recall_curve(y, proba)
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=cfg.calibration_bins)
    return {
        "roc.json": _thin(roc, cfg.curve_points),
        "precision_recall.json": _thin(
            pd.DataFrame({"recall": recall, "precision": precision}), cfg.curve_points
        ),
        "calibration.json": _thin(
            pd.DataFrame({"mean_predicted": mean_pred, "fraction_positive": frac_pos}),
            cfg.curve_points,
        ),
        "importance.json": importance(test, model, cfg, seed),
        "confusion.csv": pd.DataFrame({"actual": y, "predicted": model.decide(proba).astype(int)}),
    }


def write_plots(plots: dict[str, Any], directory: str | Path) -> None:
    directory = Path(directory)
    for name, payload in plots.items():
        if isinstance(payload, pd.DataFrame):
            files.write_text(directory / name, payload.to_csv(index=False))
        else:
            files.write_json(directory / name, payload)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--card", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True, help="directory for the plot data files")


def _main(args: argparse.Namespace, params: Params) -> None:
    test = files.read_table(args.test)
    model = load_model(args.model, args.card)
    proba = model.probability(test)  # once: metrics and plots share it
    scores = score_test_set(test, proba, model, params)
    log.info(
        "computing plots (permutation importance on up to %s rows)",
        f"{params.evaluate.importance_max_rows:,}",
    )
    plots = plot_data(test, proba, model, params.evaluate, params.model.seed)
    write_plots(plots, args.plots)
    files.write_json(args.metrics, scores)
    b, m = scores["business"], scores["ml"]
    log.info(
        "ROC AUC %.4f, expected profit %.0f (contact all: %.0f)",
        m["roc_auc"],
        b["expected_profit"],
        b["profit_contact_all"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("evaluate", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
