"""`summary.md`: the monitoring summary as markdown, for the monitoring issue, the retrain pull
request's body and the job summary (GitHub renders the tables; no image is needed)."""

from __future__ import annotations

from typing import Any

STATUS = {
    "healthy": "🟢 Healthy: nothing needs doing",
    "attention": "🟠 Needs attention (no retraining)",
    "retrain": "🔴 Retrain recommended",
}
ROWS = (  # (statistic, label, format)
    ("profit_per_record", "Profit per record", "{:,.2f}"),
    ("contact_rate", "Share of records contacted", "{:.1%}"),
    ("precision", "Precision of the contacted", "{:.1%}"),
    ("recall", "Recall (positives contacted)", "{:.1%}"),
    ("roc_auc", "ROC AUC", "{:.4f}"),
    ("positive_rate", "Positive rate", "{:.1%}"),
)
TOP_COLUMNS = 8


def _f(fmt: str, value: Any) -> str:
    return "—" if value is None else fmt.format(value)


def _ci(fmt: str, estimate: dict[str, Any] | None) -> str:
    if not estimate or estimate.get("value") is None:
        return "—"
    text = _f(fmt, estimate["value"])
    if estimate.get("low") is not None and estimate.get("high") is not None:
        text += f" ({_f(fmt, estimate['low'])} to {_f(fmt, estimate['high'])})"
    return text


def _money(s: dict[str, Any]) -> list[str]:
    perf = s["performance"]
    level = f"{perf['confidence']:.0%}"
    lines = ["### Is the model still earning money?", ""]
    if perf["realised"] is None:
        lines += [f"_{perf['note']}._", ""]
    else:
        lines += [f"{perf['note']}; intervals at {level} (seeded bootstrap).", ""]
    lines += [
        "| | this window | expected (test set, training time) |",
        "|---|---:|---:|",
    ]
    realised = perf["realised"] or {}
    for key, label, fmt in ROWS:
        value = _ci(fmt, realised.get(key))
        if key == "contact_rate" and perf["realised"] is None:
            value = _f(fmt, s["prediction"]["contact_rate"]) + " (all records)"
        lines.append(f"| {label} | {value} | {_f(fmt, perf['expected'].get(key))} |")
    if perf.get("profit"):
        p = perf["profit"]
        lines += [
            "",
            f"Realised profit of the decisions taken: **{p['realised_total']:,.0f}** on "
            f"{perf['labelled']:,} records with outcomes (at the training-time rate: "
            f"{p['expected_total']:,.0f}).",
        ]
    return [*lines, ""]


def _drift(s: dict[str, Any]) -> list[str]:
    d, pred = s["drift"], s["prediction"]
    n = len(d["columns"])
    verdict = "**the table has drifted**" if d["dataset_drift"] else "the table has not drifted"
    lines = [
        "### Is anything drifting?",
        "",
        f"{len(d['drifted'])} of {n} features moved ({d['share']:.0%}): {verdict}.",
        "",
        "| column | moved | PSI | p-value | what changed |",
        "|---|:---:|---:|---:|---|",
    ]
    for c in d["columns"][:TOP_COLUMNS]:
        mark = "🔴 yes" if c["drifted"] else "no"
        lines.append(
            f"| `{c['column']}` | {mark} | {c['psi']:.3f} | {c['p_value']:.2g} | {c['reason']} |"
        )
    lines += [
        "",
        f"Scores: PSI {pred['score_psi']:.3f} (p {pred['score_p_value']:.2g})"
        f"{' 🔴 moved' if pred['score_drifted'] else ''}; share contacted "
        f"{pred['contact_rate']:.1%} vs {pred['reference_contact_rate']:.1%} on the test set"
        f"{' 🔴 moved' if pred['contact_drifted'] else ''}.",
        "",
    ]
    return lines


def _quality(s: dict[str, Any]) -> list[str]:
    q = s["quality"]
    lines = ["### Data quality", ""]
    if q["passed"]:
        return [*lines, f"Every check of the schema passed on {q['records']:,} records.", ""]
    lines += [f"- 🔴 {p['message']}" for p in q["problems"]]
    return [*lines, ""]


def _feedback(s: dict[str, Any]) -> list[str]:
    fb = s["feedback"]
    lines = ["### Flagged via /feedback", ""]
    if not fb["flags"]:
        return [*lines, "No record was flagged.", ""]
    reasons = ", ".join(f"`{k}` {v}" for k, v in fb["by_reason"].items())
    lines.append(f"{fb['flags']:,} flags ({fb['share']:.2%} of records): {reasons}.")
    for r in fb["recent"][:5]:
        lines.append(f"- {r['ts'][:16]} `{r['key']}` `{r['reason']}`: {r['comment']}")
    return [*lines, ""]


def _challenger(s: dict[str, Any]) -> list[str]:
    c = s.get("challenger")
    if not c:
        return []
    lines = [
        "### Champion vs shadow challenger",
        "",
        f"Challenger `{c['version']}` on the same {c['records']:,} records: decisions agree on "
        f"{c['agreement']:.1%}; {c['verdict']}.",
        "",
    ]
    if c["realised"]:
        r = c["realised"]
        lines += ["| | champion | challenger | difference |", "|---|---:|---:|---:|"]
        for key, label, fmt in ROWS[:5]:
            lines.append(
                f"| {label} | {_ci(fmt, r['champion'][key])} | {_ci(fmt, r['challenger'][key])} "
                f"| {_ci(fmt, r['difference'][key])} |"
            )
        lines.append("")
    return lines


def _rule(s: dict[str, Any]) -> list[str]:
    lines = ["### The retraining rule (`params.yaml` `monitor.rule`)", ""]
    for c in s["rule"]["checks"]:
        lines.append(f"- {'🔴' if c['triggered'] else '⚪'} **{c['name']}**: {c['detail']}")
    return [*lines, ""]


def render(s: dict[str, Any]) -> str:
    w, ref = s["window"], s["reference"]
    lines = [
        f"## {STATUS[s['status']]}",
        "",
        f"**retrain: {str(s['retrain']).lower()}**"
        + (": " + "; ".join(s["reasons"]) if s["reasons"] else ""),
        "",
        f"Window `{w['id']}`: {w['records']:,} records scored by model `{w['model_version']}` "
        f"from {w['first_ts'][:16]} to {w['last_ts'][:16]} UTC; "
        f"{s['performance']['labelled']:,} with outcomes.",
        "",
    ]
    if s["alerts"]:
        lines += ["**Needs attention:**", "", *[f"- {a}" for a in s["alerts"]], ""]
    lines += [
        *_money(s),
        *_drift(s),
        *_quality(s),
        *_feedback(s),
        *_challenger(s),
        *_rule(s),
        f"_Reference: {ref['how']} ({ref['rows']:,} rows, {ref['test_rows']:,} held out). "
        f"Generated {s['generated_at'][:19]} UTC by `make monitor`._",
        "",
    ]
    return "\n".join(lines)
