"""The retraining rule (params.yaml `monitor.rule`) and the window history it reads.

Retrain when any of these holds:
- realised ROC AUC is below the training-time value by more than `max_roc_auc_drop`, and the
  confidence interval of the drop excludes zero;
- realised profit per record is below the expected one by more than
  `max_profit_per_record_drop`, and the interval of the drop excludes zero;
- the table drifted in `drift_windows` consecutive windows.

Data-quality failures and prediction drift raise an alert but never a retrain: a model
retrained on a broken feed learns the breakage. The history is a small JSON file (one entry
per window, re-analysing a window replaces its entry) so that "N consecutive windows" holds
across scheduled runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.params import MonitorRule, Tolerance
from mlops_template.monitoring.performance import Interval


@dataclass(frozen=True)
class Check:
    name: str
    triggered: bool
    detail: str


def drop_check(
    name: str, label: str, realised: Interval, expected: float | None, drop: Interval,
    tolerance: Tolerance, fmt: str,
) -> Check:  # fmt: skip
    """Is `realised` below `expected` by more than the tolerance, with the drop's interval
    (the window's and the test set's noise) excluding zero?"""
    if realised.value is None or expected is None or drop.value is None:
        return Check(name, False, f"{label}: not measured")
    allowed = tolerance.allowed(expected)
    text = (
        f"{label} {fmt.format(realised.value)} against {fmt.format(expected)} expected at "
        f"training time: "
    )
    if drop.value <= allowed:
        return Check(name, False, text + f"within the allowed drop of {fmt.format(allowed)}")
    ci = (
        f" (interval {fmt.format(drop.low)} to {fmt.format(drop.high)})"
        if drop.low is not None and drop.high is not None
        else ""
    )
    if drop.low is None or drop.low <= 0:
        return Check(
            name, False, text + f"{fmt.format(drop.value)} lower{ci}, which chance may explain"
        )
    return Check(
        name, True, text + f"{fmt.format(drop.value)} lower{ci}; allowed {fmt.format(allowed)}"
    )


def drift_check(streak: int, cfg: MonitorRule, drifted_now: bool) -> Check:
    need = cfg.drift_windows
    if streak >= need:
        return Check(
            "dataset_drift",
            True,
            f"the table drifted in {streak} consecutive windows (rule: {need})",
        )
    if drifted_now:
        return Check(
            "dataset_drift",
            False,
            f"the table drifted in {streak} consecutive window(s); the rule needs {need}",
        )
    return Check("dataset_drift", False, "the table did not drift in this window")


# --- the window history ---------------------------------------------------------------------


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    data = files.read_json(path)
    windows = data.get("windows") if isinstance(data, dict) else None
    if not isinstance(windows, list):
        raise InputError(f"{path}: not a monitoring history (no 'windows' list)")
    return [w for w in windows if isinstance(w, dict) and "id" in w]


def with_window(
    history: list[dict[str, Any]], entry: dict[str, Any], keep: int
) -> list[dict[str, Any]]:
    """The history with `entry` in place of any earlier analysis of the same window, in
    window order (newest last), at most `keep` windows."""
    others = [w for w in history if w.get("id") != entry["id"]]
    ordered = sorted([*others, entry], key=lambda w: (str(w.get("last_ts")), str(w.get("id"))))
    return ordered[-keep:]


def drift_streak(history: list[dict[str, Any]], window_id: str) -> int:
    """Consecutive drifted windows up to and including `window_id`."""
    ids = [w.get("id") for w in history]
    end = ids.index(window_id) if window_id in ids else len(history) - 1
    streak = 0
    for w in reversed(history[: end + 1]):
        if not w.get("dataset_drift"):
            break
        streak += 1
    return streak


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    files.write_json(path, {"windows": history})
