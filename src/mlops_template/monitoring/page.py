"""The monitoring page for the business: one self-contained HTML file (`report.html`).

The first screen answers, without any statistics vocabulary: is the model still earning
money (realised against expected profit per record, the share contacted, the precision of the
contacted, over time), is anything drifting (a ranked list of columns, each with what
changed in words), what people flagged via `/feedback`, and what the retraining rule decided.
Charts and the detail tables follow. Plotly draws the charts with its JavaScript inlined, so
the page works offline and loads nothing from anywhere.

Every number shown is tagged with the `summary.json` key it comes from (`data-key`), its
value (`data-value`) and its format (`data-format`): the browser test checks each against the
summary.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

FORMATS: dict[str, Callable[[Any], str]] = {
    "money": lambda v: f"{v:,.2f}",
    "share": lambda v: f"{v:.1%}",
    "ratio": lambda v: f"{v:.4f}",
    "count": lambda v: f"{v:,.0f}",
    "psi": lambda v: f"{v:.3f}",
}
STATUS = {  # no emoji: a browser without an emoji font draws boxes
    "healthy": "healthy, nothing needs doing",
    "attention": "needs attention (no retraining)",
    "retrain": "retrain recommended",
}
COLOURS = {"healthy": "#1b7f3b", "attention": "#b26a00", "retrain": "#b3261e"}
WINDOW_COLOUR, REFERENCE_COLOUR = "#1f77b4", "#9e9e9e"
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;
background:#f6f7f9}main{max-width:1200px;margin:0 auto;padding:16px 24px}
header{border-radius:10px;color:#fff;padding:14px 20px;margin-bottom:14px}
header h1{margin:0 0 4px 0;font-size:24px}header p{margin:2px 0;font-size:15px}
.tiles{display:grid;grid-template-columns:repeat(5,1fr);gap:10px;margin-bottom:12px}
.tile{background:#fff;border-radius:8px;padding:10px 12px;border-left:6px solid #ccc}
.tile.ok{border-left-color:#1b7f3b}.tile.warn{border-left-color:#b26a00}
.tile.bad{border-left-color:#b3261e}.tile h3{margin:0;font-size:13px;color:#555;font-weight:600}
.tile .big{font-size:26px;font-weight:700;margin:4px 0}.tile .sub{font-size:12px;color:#555}
.cols{display:grid;grid-template-columns:1.3fr 1fr 1fr;gap:10px;margin-bottom:16px}
.card{background:#fff;border-radius:8px;padding:10px 14px}.card h2{font-size:16px;margin:4px 0 8px}
.card ol,.card ul{margin:0;padding-left:20px;font-size:13px}.card li{margin-bottom:4px}
.muted{color:#666;font-size:12px}table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:4px 6px;text-align:left}
td.n,th.n{text-align:right}section{background:#fff;border-radius:8px;padding:10px 14px;
margin-bottom:14px}section h2{font-size:17px;margin:4px 0 8px}.bad{color:#b3261e}
"""


def value_at(summary: dict[str, Any], key: str) -> Any:
    node: Any = summary
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def num(summary: dict[str, Any], key: str, fmt: str) -> str:
    """A number from the summary, tagged with where it comes from."""
    value = value_at(summary, key)
    text = "—" if value is None else FORMATS[fmt](value)
    return (
        f'<span class="num" data-key="{html.escape(key)}" '
        f"data-value='{html.escape(json.dumps(value))}' data-format=\"{fmt}\">{text}</span>"
    )


def _e(text: Any) -> str:
    return html.escape(str(text))


def _check(summary: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in summary["rule"]["checks"] if c["name"] == name), None)


def _tile(title: str, big: str, sub: str, state: str) -> str:
    return (
        f'<div class="tile {state}"><h3>{_e(title)}</h3><div class="big">{big}</div>'
        f'<div class="sub">{sub}</div></div>'
    )


def _state(realised: Any, expected: float | None, triggered: bool) -> str:
    if triggered:
        return "bad"
    if realised is None or expected is None:
        return ""
    return "warn" if realised < expected * 0.95 else "ok"


def tiles(s: dict[str, Any]) -> str:
    perf = s["performance"]
    realised = perf["realised"]
    base = "performance.realised"
    level = f"{perf['confidence']:.0%} interval"
    out = []
    for stat, title, fmt, check in (
        ("profit_per_record", "Profit per record", "money", "profit_per_record"),
        ("precision", "Precision of the contacted", "share", None),
        ("roc_auc", "Ranking quality (ROC AUC)", "ratio", "roc_auc"),
    ):
        expected = num(s, f"performance.expected.{stat}", fmt)
        if realised is None or realised[stat]["value"] is None:
            out.append(_tile(title, "—", f"waiting for outcomes; expected {expected}", ""))
            continue
        est = realised[stat]
        ci = ""
        if est["low"] is not None:
            low, high = num(s, f"{base}.{stat}.low", fmt), num(s, f"{base}.{stat}.high", fmt)
            ci = f"{level}: {low} to {high}<br>"
        c = _check(s, check) if check else None
        state = _state(est["value"], perf["expected"][stat], bool(c and c["triggered"]))
        out.append(
            _tile(title, num(s, f"{base}.{stat}.value", fmt), f"{ci}expected {expected}", state)
        )
    pred = s["prediction"]
    out.insert(
        1,
        _tile(
            "Share of records contacted",
            num(s, "prediction.contact_rate", "share"),
            f"expected {num(s, 'performance.expected.contact_rate', 'share')}",
            "bad" if pred["contact_drifted"] else "ok",
        ),
    )
    out.append(
        _tile(
            "Records in this window",
            num(s, "window.records", "count"),
            f"with outcomes: {num(s, 'performance.labelled', 'count')}<br>"
            f"flagged via /feedback: {num(s, 'feedback.flags', 'count')}",
            "",
        )
    )
    return '<div class="tiles">' + "".join(out) + "</div>"


def drifting(s: dict[str, Any]) -> str:
    cols = s["drift"]["columns"]
    moved = [(i, c) for i, c in enumerate(cols) if c["drifted"]]
    items = "".join(
        f"<li><b>{_e(c['column'])}</b>: {_e(c['reason'])} "
        f'<span class="muted">(PSI {num(s, f"drift.columns.{i}.psi", "psi")})</span></li>'
        for i, c in moved[:6]
    )
    if not moved:
        items = "<li>No column moved beyond what chance explains.</li>"
    d = s["drift"]
    verdict = "The table as a whole has drifted." if d["dataset_drift"] else ""
    return (
        f'<div class="card"><h2>Is anything drifting?</h2><ol>{items}</ol>'
        f'<p class="muted">{len(d["drifted"])} of {len(cols)} columns moved. {verdict} '
        "A column is listed when its values differ from training by more than chance explains "
        "and enough to matter.</p></div>"
    )


def feedback(s: dict[str, Any]) -> str:
    fb = s["feedback"]
    if not fb["flags"]:
        body = "<p>Nobody flagged a decision in this window.</p>"
    else:
        reasons = "".join(
            f"<li>{_e(k)}: {num(s, f'feedback.by_reason.{k}', 'count')}</li>"
            for k in fb["by_reason"]
        )
        recent = "".join(
            f"<li>{_e(r['ts'][:10])} <code>{_e(r['key'])}</code>: "
            f"{_e(r['comment'] or r['reason'])}</li>"
            for r in fb["recent"][:3]
        )
        body = (
            f"<p>{num(s, 'feedback.flags', 'count')} flags "
            f"({num(s, 'feedback.share', 'share')} of records)</p><ul>{reasons}</ul>"
            f'<p class="muted">Latest:</p><ul>{recent}</ul>'
        )
    return f'<div class="card"><h2>Flagged via /feedback</h2>{body}</div>'


def quality_card(s: dict[str, Any]) -> str:
    q = s["quality"]
    if q["passed"]:
        body = (
            "<p>Every check of the data contract passed on "
            f"{num(s, 'quality.records', 'count')} records.</p>"
        )
    else:
        body = (
            "<ul>"
            + "".join(f'<li class="bad">{_e(p["message"])}</li>' for p in q["problems"][:6])
            + "</ul>"
        )
    return f'<div class="card"><h2>Is the data arriving intact?</h2>{body}</div>'


def plain_reasons(s: dict[str, Any]) -> list[str]:
    """Why the rule says retrain, in words (the rule's own detail is further down)."""
    perf, out = s["performance"], []
    for c in s["rule"]["checks"]:
        if not c["triggered"]:
            continue
        if c["name"] == "profit_per_record":
            out.append(
                f"it earns {num(s, 'performance.realised.profit_per_record.value', 'money')} per "
                f"record where {num(s, 'performance.expected.profit_per_record', 'money')} was "
                "expected"
            )
        elif c["name"] == "roc_auc":
            out.append(
                "it tells positives from negatives less well than when it was trained (ROC AUC "
                f"{num(s, 'performance.realised.roc_auc.value', 'ratio')}, was "
                f"{num(s, 'performance.expected.roc_auc', 'ratio')})"
            )
        elif c["name"] == "dataset_drift":
            out.append(
                f"its inputs have drifted in {num(s, 'rule.drift_streak', 'count')} windows "
                "in a row"
            )
    if not out and perf["realised"] is None:
        out.append(f"({_e(perf['note'])})")
    return out


def header(s: dict[str, Any], title: str) -> str:
    reasons = plain_reasons(s)
    if s["retrain"]:
        decided = "The retraining rule says: <b>retrain</b>: " + "; ".join(reasons) + "."
    else:
        decided = "The retraining rule says: <b>no retraining needed</b>" + (
            f" {reasons[0]}." if reasons else "."
        )
    w = s["window"]
    return (
        f'<header style="background:{COLOURS[s["status"]]}"><h1>{_e(title)}: '
        f"{_e(STATUS[s['status']])}</h1><p>{decided}</p>"
        f"<p>Window {_e(w['first_ts'][:16])} to {_e(w['last_ts'][:16])} UTC, model "
        f"<code>{_e(w['model_version'])}</code>.</p></header>"
    )


# --- charts -----------------------------------------------------------------------------------


def _html(fig: go.Figure, first: bool) -> str:
    fig.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, template="plotly_white")
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=first,
            config={"displaylogo": False, "responsive": True},
        )
    )


def over_time(s: dict[str, Any]) -> go.Figure:
    days = s["by_day"]
    x = [d["day"] for d in days]
    exp = s["performance"]["expected"]
    fig = make_subplots(
        rows=1, cols=3, subplot_titles=("Profit per record", "Precision of the contacted",
                                        "Share contacted"),
    )  # fmt: skip
    series = (
        ("profit_per_record", 1, "Profit per record"),
        ("precision", 2, "Precision"),
        ("contact_rate", 3, "Share contacted"),
    )
    for key, col, name in series:
        y = [d[key] for d in days]
        fig.add_trace(
            go.Bar(x=x, y=y, name=name, marker_color=WINDOW_COLOUR, showlegend=False), 1, col
        )
        if exp.get(key) is not None:
            fig.add_trace(
                go.Scatter(
                    x=x, y=[exp[key]] * len(x), mode="lines", name="expected",
                    line={"color": "#333", "dash": "dash"}, showlegend=col == 1,
                ),
                1, col,
            )  # fmt: skip
    fig.update_layout(height=300, title="Day by day (dashed: expected at training time)")
    return fig


def psi_chart(s: dict[str, Any], min_psi: float) -> go.Figure:
    cols = sorted(s["drift"]["columns"], key=lambda c: c["psi"])
    fig = go.Figure(
        go.Bar(
            x=[c["psi"] for c in cols],
            y=[c["column"] for c in cols],
            orientation="h",
            marker_color=["#b3261e" if c["drifted"] else WINDOW_COLOUR for c in cols],
        )
    )
    fig.add_vline(x=min_psi, line_dash="dash", line_color="#333")
    fig.update_layout(
        height=28 * len(cols) + 80, title="How far each column moved (PSI; red: flagged)"
    )
    return fig


def bins_chart(title: str, bins: list[dict[str, Any]]) -> go.Figure:
    x = [b["bin"] for b in bins]
    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=[b["reference"] for b in bins],
                name="training",
                marker_color=REFERENCE_COLOUR,
            ),
            go.Bar(
                x=x, y=[b["window"] for b in bins], name="this window", marker_color=WINDOW_COLOUR
            ),
        ]
    )
    fig.update_layout(barmode="group", height=280, title=title, yaxis_tickformat=".0%")
    return fig


# --- the detail tables ----------------------------------------------------------------------


def drift_table(s: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(c['column'])}</td><td>{'yes' if c['drifted'] else 'no'}</td>"
        f'<td class="n">{num(s, f"drift.columns.{i}.psi", "psi")}</td>'
        f'<td class="n">{c["p_value"]:.2g}</td><td>{_e(c["reason"])}</td></tr>'
        for i, c in enumerate(s["drift"]["columns"])
    )
    return (
        "<section><h2>Every column</h2><table><tr><th>column</th><th>moved</th>"
        '<th class="n">PSI</th><th class="n">p-value</th><th>what changed</th></tr>'
        f"{rows}</table></section>"
    )


def challenger_table(s: dict[str, Any]) -> str:
    c = s.get("challenger")
    if not c:
        return ""
    body = (
        f"<p>Challenger <code>{_e(c['version'])}</code> scored the same "
        f"{num(s, 'challenger.records', 'count')} records; the decisions agree on "
        f"{num(s, 'challenger.agreement', 'share')}. {_e(c['verdict'])}.</p>"
    )
    if c["realised"]:
        rows = ""
        for stat, label, fmt in (
            ("profit_per_record", "Profit per record", "money"),
            ("precision", "Precision of the contacted", "share"),
            ("roc_auc", "ROC AUC", "ratio"),
            ("contact_rate", "Share contacted", "share"),
        ):
            cells = "".join(
                f'<td class="n">{num(s, f"challenger.realised.{side}.{stat}.value", fmt)}</td>'
                for side in ("champion", "challenger", "difference")
            )
            rows += f"<tr><td>{label}</td>{cells}</tr>"
        body += (
            '<table><tr><th></th><th class="n">champion</th><th class="n">challenger</th>'
            f'<th class="n">difference</th></tr>{rows}</table>'
        )
    return f"<section><h2>Champion vs shadow challenger</h2>{body}</section>"


def rule_section(s: dict[str, Any]) -> str:
    items = "".join(
        f"<li>{'🔴' if c['triggered'] else '⚪'} <b>{_e(c['name'])}</b>: {_e(c['detail'])}</li>"
        for c in s["rule"]["checks"]
    )
    history = "".join(
        f"<tr><td>{_e(h['first_ts'][:10])} to {_e(h['last_ts'][:10])}</td>"
        f"<td>{_e(h['id'])}</td><td>{'yes' if h['dataset_drift'] else 'no'}</td></tr>"
        for h in reversed(s["rule"]["history"][-10:])
    )
    ref = s["reference"]
    return (
        f"<section><h2>The retraining rule</h2><ul>{items}</ul>"
        "<table><tr><th>window</th><th>id</th><th>table drifted</th></tr>"
        f'{history}</table><p class="muted">Reference: {_e(ref["how"])}; '
        f"{num(s, 'reference.rows', 'count')} rows, {num(s, 'reference.test_rows', 'count')} "
        f"held out. Generated {_e(s['generated_at'][:19])} UTC.</p></section>"
    )


def render(s: dict[str, Any], title: str, min_psi: float) -> str:
    """The whole page."""
    charts = [
        _html(over_time(s), first=True),
        _html(psi_chart(s, min_psi), first=False),
        _html(
            bins_chart(
                "The model's scores: training vs this window", s["prediction"]["score_bins"]
            ),
            first=False,
        ),
    ]
    for c in [c for c in s["drift"]["columns"] if c["drifted"]][:3]:
        charts.append(
            _html(bins_chart(f"{c['column']}: training vs this window", c["bins"]), first=False)
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{_e(title)}</title><meta name="viewport" content="width=device-width">'
        f"<style>{CSS}</style></head><body><main>"
        f"{header(s, title)}{tiles(s)}"
        f'<div class="cols">{drifting(s)}{feedback(s)}{quality_card(s)}</div>'
        + "".join(f"<section>{c}</section>" for c in charts)
        + drift_table(s)
        + challenger_table(s)
        + rule_section(s)
        + "</main></body></html>\n"
    )
