"""One production window against its reference: everything `summary.json` says.

`analyse` is pure: the window, the outcomes, the reference, the params and the window history
in; the summary (plain JSON data) and the new history out. `monitor.py` does the reading and
writing around it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.core import business
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.table import Table
from mlops_template.monitoring import drift, performance, quality, rule
from mlops_template.monitoring.performance import Decisions
from mlops_template.monitoring.reference import Reference
from mlops_template.monitoring.window import RECORD, Outcomes, Window, Y, inputs, label, records

EXPECTED_KEYS = {  # realised statistic -> where metrics.json has its training-time value
    "roc_auc": ("ml", "roc_auc"),
    "precision": ("ml", "precision"),
    "recall": ("ml", "recall"),
    "contact_rate": ("business", "contact_rate"),
    "positive_rate": ("ml", "positive_rate"),
    "profit_per_record": ("business", "profit_per_record"),
}
RECENT_FEEDBACK = 10
COMMENT_CHARS = 200


def jsonable(value: Any) -> Any:
    """JSON-friendly: dataclasses as dicts, numpy scalars as Python, NaN as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


def expected_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, (section, name) in EXPECTED_KEYS.items():
        value = metrics.get(section, {}).get(name)
        out[key] = float(value) if isinstance(value, int | float) else None
    return out


def window_id(champion: pd.DataFrame) -> str:
    """Which window this is: its first record's time and a digest of its records."""
    digest = hashlib.sha256(
        pd.util.hash_pandas_object(champion[[RECORD, "ts"]], index=False).to_numpy().tobytes()
    ).hexdigest()
    return f"{champion['ts'].min():%Y%m%dT%H%M}-{digest[:8]}"


def _decisions(frame: pd.DataFrame) -> Decisions:
    return Decisions(
        y=frame[Y].to_numpy(dtype=np.int64),
        probability=frame["probability"].to_numpy(dtype=np.float64),
        contact=frame["contact"].to_numpy(dtype=bool),
    )


def _by_day(champion: pd.DataFrame, labelled: pd.DataFrame, params: Params) -> list[dict[str, Any]]:
    """Per day of scoring: records, share contacted, mean score; once outcomes exist, the
    precision of the contacted and the realised profit per record."""
    gain, cost = business.gain(params.business), params.business.contact_cost
    days = champion.groupby(champion["ts"].dt.normalize(), sort=True).agg(
        records=("contact", "size"), contact_rate=("contact", "mean"),
        mean_score=("probability", "mean"),
    )  # fmt: skip
    known = pd.DataFrame(index=days.index[:0])
    if len(labelled):
        c = labelled["contact"].to_numpy(dtype=bool)
        y = labelled[Y].to_numpy(dtype=np.int64)
        per = pd.DataFrame(
            {
                "day": labelled["ts"].dt.normalize(),
                "n": 1,
                "c": c,
                "hit": c & (y == 1),
                "profit": c * (y * gain - cost),
            }
        )
        known = per.groupby("day").sum()
    out = []
    for day, row in days.iterrows():
        entry: dict[str, Any] = {
            "day": f"{day:%Y-%m-%d}",
            "records": int(row["records"]),
            "contact_rate": float(row["contact_rate"]),
            "mean_score": float(row["mean_score"]),
            "labelled": 0,
            "precision": None,
            "profit_per_record": None,
        }
        if day in known.index:
            k = known.loc[day]  # type: ignore[call-overload]  # a day of the index
            entry["labelled"] = int(k["n"])
            entry["precision"] = float(k["hit"] / k["c"]) if k["c"] else None
            entry["profit_per_record"] = float(k["profit"] / k["n"])
        out.append(entry)
    return out


def _feedback(window: Window, records_n: int) -> dict[str, Any]:
    fb = window.feedback
    if fb.empty:
        return {"flags": 0, "share": 0.0, "by_reason": {}, "recent": []}
    recent = fb.sort_values("ts", ascending=False).head(RECENT_FEEDBACK)
    return {
        "flags": len(fb),
        "share": len(fb) / records_n if records_n else 0.0,
        "by_reason": {str(k): int(v) for k, v in fb["reason"].value_counts().items()},
        "recent": [
            {
                "ts": row["ts"].isoformat(),
                "key": str(row["key"]),
                "reason": str(row["reason"]),
                "comment": str(row.get("comment") or "")[:COMMENT_CHARS],
                "model_version": str(row.get("model_version", "")),
            }
            for _, row in recent.iterrows()
        ],
    }


def _challenger(
    predictions: pd.DataFrame, champion: pd.DataFrame, labelled: pd.DataFrame, params: Params
) -> dict[str, Any] | None:
    lines = predictions[predictions["role"] == "challenger"]
    if lines.empty:
        return None
    version = str(lines["model_version"].astype(str).value_counts().index[0])
    lines = lines[lines["model_version"].astype(str) == version]
    pairs = champion.merge(
        lines.drop_duplicates(["request_id", "key"], keep="last")[
            ["request_id", "key", "probability", "contact"]
        ],
        on=["request_id", "key"],
        suffixes=("", "_challenger"),
    )
    if pairs.empty:
        return None
    out: dict[str, Any] = {
        "version": version,
        "records": len(pairs),
        "agreement": float((pairs["contact"] == pairs["contact_challenger"]).mean()),
        "mean_abs_difference": float(
            (pairs["probability"] - pairs["probability_challenger"]).abs().mean()
        ),
        "contact_rate": {
            "champion": float(pairs["contact"].mean()),
            "challenger": float(pairs["contact_challenger"].mean()),
        },
        "labelled": 0,
        "realised": None,
        "verdict": "no outcomes yet for the records both models scored",
    }
    both = pairs.merge(labelled[[RECORD, Y]], on=RECORD) if len(labelled) else pairs.iloc[:0]
    reason = performance.judged(both[Y].to_numpy(dtype=np.int64), params.monitor.performance)
    out["labelled"] = len(both)
    if reason is not None:
        if len(both):
            out["verdict"] = f"not judged yet: {reason}"
        return out
    champ = _decisions(both)
    chall = Decisions(
        champ.y,
        both["probability_challenger"].to_numpy(dtype=np.float64),
        both["contact_challenger"].to_numpy(dtype=bool),
    )
    (c1, c2), diff = performance.estimate(
        [champ, chall], params.business, params.monitor.performance
    )
    assert diff is not None
    out["realised"] = {"champion": c1, "challenger": c2, "difference": diff}
    gain = diff["profit_per_record"]
    if gain.low is not None and gain.low > 0:
        out["verdict"] = "the challenger earns more per record (the interval excludes no gain)"
    elif gain.high is not None and gain.high < 0:
        out["verdict"] = "the challenger earns less per record (the interval excludes no loss)"
    else:
        out["verdict"] = "no significant difference in profit per record"
    return out


def _performance(
    labelled: pd.DataFrame, outcomes: Outcomes, records_n: int, expected: dict[str, float | None],
    reference: Reference, params: Params, table: Table,
) -> dict[str, Any]:  # fmt: skip
    cfg = params.monitor.performance
    out: dict[str, Any] = {
        "labelled": len(labelled),
        "coverage": len(labelled) / records_n if records_n else 0.0,
        "outcomes": {
            "files": list(outcomes.files),
            "rows": outcomes.rows,
            "invalid_labels": outcomes.invalid,
            "unmatched": outcomes.unmatched,
        },
        "confidence": cfg.confidence,
        "expected": expected,
        "realised": None,
        "drop": None,
        "profit": None,
    }
    if table.id is None:
        return out | {
            "status": "no_id",
            "note": "the table has no id column, so outcomes cannot be matched to records",
        }
    if labelled.empty:
        return out | {"status": "waiting", "note": "no outcomes have arrived for this window yet"}
    d = _decisions(labelled)
    resampled = performance.resample([d], params.business, cfg, cfg.seed)
    (realised,) = performance.intervals(resampled, cfg.confidence)
    gain = business.gain(params.business)
    out["realised"] = realised
    test = reference.test_resamples(params.business, cfg)
    out["drop"] = performance.drops(resampled, test, expected, cfg.confidence)
    out["profit"] = {
        "realised_total": float(np.sum(d.contact * (d.y * gain - params.business.contact_cost))),
        "expected_total": (expected["profit_per_record"] or 0.0) * len(labelled),
    }
    reason = performance.judged(d.y, cfg)
    if reason is not None:
        return out | {"status": "too_few", "note": f"not judged yet: {reason}"}
    return out | {"status": "judged", "note": f"{len(labelled):,} records with outcomes"}


def _rule_checks(
    perf: dict[str, Any], streak: int, drifted: bool, params: Params
) -> list[rule.Check]:
    cfg = params.monitor.rule
    checks = []
    realised = perf["realised"] if perf["status"] == "judged" else None
    for name, title, tol, fmt in (
        ("roc_auc", "ROC AUC", cfg.max_roc_auc_drop, "{:.4f}"),
        ("profit_per_record", "profit per record", cfg.max_profit_per_record_drop, "{:,.2f}"),
    ):
        if realised is None:
            checks.append(rule.Check(name, False, f"{title}: {perf['note']}"))
        else:
            checks.append(
                rule.drop_check(
                    name,
                    title,
                    realised[name],
                    perf["expected"][name],
                    perf["drop"][name],
                    tol,
                    fmt,
                )
            )
    checks.append(rule.drift_check(streak, cfg, drifted))
    return checks


def _alerts(summary: dict[str, Any]) -> list[str]:
    alerts = [p["message"] for p in summary["quality"]["problems"]]
    cols = summary["drift"]["columns"]
    alerts += [f"{c['column']} drifted: {c['reason']}" for c in cols if c["drifted"]]
    pred = summary["prediction"]
    if pred["score_drifted"]:
        alerts.append(f"the score distribution moved (PSI {pred['score_psi']:.3f})")
    if pred["contact_drifted"]:
        alerts.append(
            f"{pred['contact_rate']:.1%} of records contacted, "
            f"{pred['reference_contact_rate']:.1%} on the test set"
        )
    return alerts


def analyse(
    window: Window,
    outcomes: Outcomes,
    reference: Reference,
    params: Params,
    history: list[dict[str, Any]],
    table: Table,
    generated_at: datetime,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary of one window and the window history with it."""
    version = reference.model.version
    predictions = window.predictions
    champion = records(predictions, version, table, "champion")
    if champion.empty:
        raise InputError(f"the window holds no record scored by the champion model {version}")
    features = inputs(champion, table)
    cfg = params.monitor
    table_drift = drift.table_drift(reference.data, features, table, cfg.drift)
    ref_scores = reference.scores.to_numpy()
    pred = drift.prediction_drift(
        ref_scores,
        reference.model.decide(ref_scores),
        champion["probability"].to_numpy(dtype=np.float64),
        champion["contact"].to_numpy(dtype=bool),
        cfg.drift,
    )
    labelled, outcomes = label(champion, outcomes)
    expected = expected_metrics(reference.metrics)
    perf = _performance(labelled, outcomes, len(champion), expected, reference, params, table)
    wid = window_id(champion)
    entry = {
        "id": wid,
        "first_ts": champion["ts"].min().isoformat(),
        "last_ts": champion["ts"].max().isoformat(),
        "records": len(champion),
        "model_version": version,
        "dataset_drift": table_drift.dataset_drift,
        "drifted": table_drift.drifted,
        "analysed_at": generated_at.isoformat(),
    }
    new_history = rule.with_window(history, entry, cfg.rule.history)
    streak = rule.drift_streak(new_history, wid)
    checks = _rule_checks(perf, streak, table_drift.dataset_drift, params)
    reasons = [c.detail for c in checks if c.triggered]
    others = {
        str(k): int(v)
        for k, v in predictions[predictions["role"] == "champion"]["model_version"]
        .astype(str)
        .value_counts()
        .items()
        if str(k) != version
    }
    summary: dict[str, Any] = {
        "generated_at": generated_at.isoformat(),
        "window": {
            "id": wid,
            "first_ts": entry["first_ts"],
            "last_ts": entry["last_ts"],
            "lines": len(predictions),
            "records": len(champion),
            "requests": int(champion["request_id"].nunique()),
            "model_version": version,
            "other_versions": others,
        },
        "reference": {
            "revision": reference.revision,
            "how": reference.how,
            "model_version": version,
            "rows": len(reference.data),
            "test_rows": len(reference.test),
            "threshold": reference.model.threshold,
        },
        "drift": table_drift,
        "prediction": pred,
        "quality": quality.check_quality(features, table),
        "performance": perf,
        "by_day": _by_day(champion, labelled, params),
        "challenger": _challenger(predictions, champion, labelled, params),
        "feedback": _feedback(window, len(champion)),
        "rule": {
            "retrain": bool(reasons),
            "reasons": reasons,
            "checks": checks,
            "drift_streak": streak,
            "history": new_history,
        },
    }
    summary = jsonable(summary)
    alerts = _alerts(summary)
    summary["retrain"] = bool(reasons)
    summary["reasons"] = reasons
    summary["alerts"] = alerts
    summary["status"] = "retrain" if reasons else ("attention" if alerts else "healthy")
    return _ordered(summary), new_history


def _ordered(summary: dict[str, Any]) -> dict[str, Any]:
    """The verdict first: what a reader (or `jq .retrain`) wants."""
    first = ("status", "retrain", "reasons", "alerts", "generated_at")
    return {k: summary[k] for k in first} | {k: v for k, v in summary.items() if k not in first}
