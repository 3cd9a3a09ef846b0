"""Stage 5, evaluate: score the held-out test set in business and ML terms.

Writes `paths.metrics` (git-tracked, read by the gate and the PR report) and the DVC plots
under `paths.plots`: ROC, precision-recall, calibration, confusion matrix and permutation
feature importance.

Through DVCLive (`paths.live`), what a run's metrics.json does not hold: the expected profit
at every threshold on the test set (is the threshold tuned on train near the best one in
hindsight?), and the test ROC AUC and log loss after each boosting iteration (too few, too
many?). `dvc exp show` lists its summary, `dvc plots diff` compares the curves between
experiments. metrics.json stays hand-written: it is the typed payload the gate, the PR
report and the metric catalog read (README, "Experiments").
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance
from sklearn.metrics import log_loss, precision_recall_curve, roc_auc_score
from threadpoolctl import threadpool_limits

from mlops_template.core import business, cli, metrics, stopping
from mlops_template.core import io as files
from mlops_template.core.model import LoadedModel, load_model
from mlops_template.core.params import Business, Evaluate, Params

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


def profit_by_threshold(y: np.ndarray, proba: np.ndarray, money: Business) -> pd.DataFrame:
    """Expected profit of contacting every row scored at least `threshold`, at each distinct
    score (and at 1.0 + the top score: contact no one), by ascending threshold."""
    order = np.argsort(-proba, kind="stable")
    ranked = proba[order]
    worth = np.where(y[order] == 1, business.gain(money), 0.0) - money.contact_cost
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last row of each group of ties
    return pd.DataFrame(
        {
            "threshold": np.r_[ranked[0] + 1.0, ranked[last]][::-1],
            "expected_profit": np.r_[0.0, np.cumsum(worth)[last]][::-1],
        }
    )


def threshold_hindsight(curve: pd.DataFrame, threshold: float, profit: float) -> dict[str, float]:
    """The model's threshold against the best one on the test set in hindsight."""
    best = curve.iloc[int(curve["expected_profit"].to_numpy().argmax())]
    return {
        "tuned": metrics.rounded(threshold),
        "best_on_test": metrics.rounded(best["threshold"]),
        "profit_at_best": metrics.rounded(best["expected_profit"]),
        "regret": metrics.rounded(best["expected_profit"] - profit),
    }


def by_iteration(test: pd.DataFrame, model: LoadedModel, points: int) -> list[dict[str, float]]:
    """Test ROC AUC and log loss after each boosting iteration (at most `points` of them,
    always the last); a model without iterations gives its final values once."""
    y = model.table.target(test)
    fitted = model.estimator.estimator_
    staged: Iterator[np.ndarray]
    if hasattr(fitted, "staged_predict_proba"):
        staged = (p[:, 1] for p in fitted.staged_predict_proba(model.table.encode(test)))
        n_iter = int(fitted.n_iter_)
    else:
        staged, n_iter = iter([model.probability(test)]), 1
    keep = set(np.unique(np.linspace(1, n_iter, min(points, n_iter)).round().astype(int)))
    return [
        {
            "iteration": i,
            "roc_auc": metrics.rounded(roc_auc_score(y, p)),
            "log_loss": metrics.rounded(log_loss(y, p, labels=[0, 1])),
        }
        for i, p in enumerate(staged, start=1)
        if i in keep
    ]


def log_live(
    directory: str,
    curve: list[dict[str, float]],
    steps: list[dict[str, float]],
    summary: dict[str, float],
) -> None:
    """Write the DVCLive files (no DVC experiment of its own: `dvc exp run` makes those)."""
    from dvclive.live import Live  # imports DVC: only this stage needs it

    class StageLive(Live):
        """DVCLive's writers without its own DVC integration (experiment saving, dvc.yaml,
        Studio): in a stage, DVC versions these files as outputs. That integration also
        fails on a repository without commits (scmrepo's "Empty git repo", dvclive 3.49;
        treeverse/dvclive#522), which the first `dvc repro` after `git init` is."""

        def _init_dvc(self) -> None:
            return None

    stopping.check()
    with StageLive(dir=directory, save_dvc_exp=False, dvcyaml=False, report=None) as live:
        for step in steps:
            live.step = int(step["iteration"])
            live.log_metric("test/roc_auc", step["roc_auc"])
            live.log_metric("test/log_loss", step["log_loss"])
        for key, value in summary.items():
            live.log_metric(f"threshold/{key}", value, plot=False)
        live.log_plot(
            "profit_by_threshold",
            curve,
            x="threshold",
            y="expected_profit",
            template="linear",
            title="Expected profit on the test set by decision threshold",
        )


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--card", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--plots", required=True, help="directory for the plot data files")
    p.add_argument("--live", required=True, help="DVCLive's directory (curves, summary)")


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
    curve = profit_by_threshold(model.table.target(test), proba, params.business)
    hindsight = threshold_hindsight(curve, model.threshold, scores["business"]["expected_profit"])
    points = params.evaluate.curve_points
    # Hundreds of small predictions: one thread was 2.4x faster than all cores on a busy machine.
    with threadpool_limits(limits=params.model.n_threads):
        steps = by_iteration(test, model, points)
    log_live(args.live, _thin(curve, points), steps, hindsight)
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
