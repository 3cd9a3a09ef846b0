"""What an audit pack holds, and how it reads: one Markdown text and the same as a
self-contained HTML page (no script, no request: inline CSS and SVG charts).

`audit.py` gathers the facts (`Pack`); this module only renders them, so every section can be
tested on a hand-made pack. The order is the reader's: who the model is, what it is for, what
it learnt from, how well it does (money first), why it decides as it does, what changed since
the previous production model, what monitoring says, and what it runs on.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mlops_template.core import catalog
from mlops_template.core.explain import ALL, Explanation, SegmentImportance
from mlops_template.core.model import ModelCard
from mlops_template.governance import charts
from mlops_template.governance.charts import Chart, Series
from mlops_template.governance.registry import Event, Period, Version
from mlops_template.review.compare import Comparison

# The `## ` sections of the team's intended-use file, in the order the pack uses them.
INTENDED_USE: Final = "Intended use"
LIMITS: Final = "Limits"
PROVENANCE: Final = "Provenance"
TERMS: Final = "Terms of use"
PERSONAL_DATA: Final = "Personal data"
TEAM_SECTIONS: Final = (INTENDED_USE, LIMITS, PROVENANCE, TERMS, PERSONAL_DATA)
MARKERS: Final = {
    "better": "better",
    "worse": "worse",
    "unchanged": "unchanged",
    "changed": "changed",
}


@dataclass(frozen=True)
class Details:
    """A collapsed section: `<details>` in both outputs, its body Markdown."""

    summary: str
    body: str


# A Markdown text, a chart (mermaid in Markdown, SVG in HTML) or a collapsed section. The
# Markdown texts never carry raw HTML: what is not the pack's own words is escaped (`_text`),
# and the HTML page renders them with raw HTML off; charts and details are put in after.
Block = str | Chart | Details


# --- the facts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    project: str  # the service's name (`<project.name>_service`)
    label: str  # the registered version (`v1.2.0`), or "work tree"
    artifact: str  # the registry's name for the model (dvc.yaml)
    card: ModelCard
    commit: str
    commit_date: str
    commit_subject: str
    dirty: bool
    dvc_lock_sha256: str
    registered: Version | None
    events: tuple[Event, ...]  # the registry's events about this version, oldest first
    periods: tuple[Period, ...]  # the stages it held, oldest first
    production: str  # the production stage's name
    in_production_now: Period | None  # who holds it now
    image_digest: str | None


@dataclass(frozen=True)
class StageHashes:
    stage: str
    outs: tuple[tuple[str, str, int | None], ...]  # path, md5, size
    data_deps: tuple[tuple[str, str], ...]  # path, md5 (not the code the stage depends on)


@dataclass(frozen=True)
class Excluded:
    name: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Data:
    source: str
    lineage: tuple[StageHashes, ...]
    rows: int | None
    label_rate: float | None
    null_rate: dict[str, float]
    n_train: int
    n_test: int | None
    n_columns: int | None
    n_checks: int | None  # cross-column rules the validate stage ran
    time_span: tuple[str, str, str] | None  # column, first, last
    time_note: str
    features: tuple[str, ...]
    pii: tuple[str, ...]
    excluded: tuple[Excluded, ...]


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    n: int
    mean_predicted: float
    observed: float


@dataclass(frozen=True)
class Gap:
    column: str
    best: tuple[str, float]
    worst: tuple[str, float]
    limit: float | None  # None: reported, not guarded

    @property
    def gap(self) -> float:
        return self.best[1] - self.worst[1]


@dataclass(frozen=True)
class Performance:
    metrics: dict[str, Any]
    noun: str
    positive_name: str
    negative_name: str
    misses: tuple[str, ...]  # the version's own gate floors
    gaps: tuple[Gap, ...]
    confusion: dict[str, int] | None
    calibration: tuple[CalibrationBin, ...]
    calibration_note: str
    threshold: float
    expected_profit_cv: float
    cv_folds: int | None
    business: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    why: str  # why this record was chosen
    explanation: Explanation


@dataclass(frozen=True)
class Explanations:
    importance: tuple[tuple[str, float], ...]  # permutation importance (evaluate), best first
    top_n: int
    segments: tuple[SegmentImportance, ...]  # per segment column: the whole set first
    decisions: tuple[Decision, ...]
    note: str  # why something is missing ("" when nothing is)


@dataclass(frozen=True)
class Previous:
    version: str | None  # the production version before this one (None: there was none)
    comparison: Comparison | None
    note: str


@dataclass(frozen=True)
class Environment:
    python: str
    base_image: str
    sklearn: str
    packages: tuple[tuple[str, str], ...]  # the runtime closure (what the image installs)
    locked_total: int
    uv_lock_sha256: str | None


@dataclass(frozen=True)
class Pack:
    identity: Identity
    team: dict[str, str]  # the intended-use file's sections
    team_source: str  # Markdown: which file, at which commit
    data: Data
    performance: Performance
    explanations: Explanations
    previous: Previous
    monitoring: dict[str, Any] | None  # the monitoring job's summary.json
    monitoring_text: str | None  # its summary.md, written for people
    monitoring_source: str
    environment: Environment
    notes: tuple[str, ...] = field(default=())  # caveats about how the pack was made


# --- small helpers -----------------------------------------------------------------------------


# What is not the pack's own words (commit subjects, tag messages, authors, the team's file,
# record ids, category values, the monitoring summary) reaches the Markdown without raw HTML:
# `&`, `<`, `>` become entities, except inside code spans and autolinks, where HTML is not
# read, and only where CommonMark pairs the backticks as read here (see `_spans`).
_KEPT: Final = re.compile(
    r"(?<![`\\])(`+)(?!`)(?:.*?[^`])?\1(?!`)|<(?:https?|mailto):[^\s<>\"'`]*>"
)  # a code span (a whole run of backticks, not escaped, to the next run as long) or autolink
_ENTITIES: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_FENCE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _spans(line: str) -> list[str] | None:
    """The line as text, kept, text, kept, ...; None when a backtick is left unpaired (then
    CommonMark may pair the backticks otherwise, with another line's say)."""
    parts, last = [], 0
    for kept in _KEPT.finditer(line):
        parts += [line[last : kept.start()], kept.group(0)]
        last = kept.end()
    parts.append(line[last:])
    return None if any("`" in text for text in parts[::2]) else parts


def _escape_lines(lines: list[str]) -> list[str]:
    """Lines that CommonMark may read as one inline run (a paragraph, a cell): code spans and
    autolinks kept when every line pairs its backticks, else everything escaped (a code span
    then shows the entities: a cosmetic loss, never markup)."""
    split = [_spans(line) for line in lines]
    if any(parts is None for parts in split):
        return [line.translate(_ENTITIES) for line in lines]
    return [
        "".join(p if i % 2 else p.translate(_ENTITIES) for i, p in enumerate(parts or []))
        for parts in split
    ]


def _text(value: Any) -> str:
    """A value from outside put into the pack's own sentences: inert, backticks included
    (so it can neither open a code span nor close one of the pack's)."""
    return str(value).translate(_ENTITIES).replace("`", "&#96;")


def _prose(markdown: str) -> str:
    """A Markdown document from outside (the team's sections, the monitoring summary): each
    run of lines between blank lines escaped as one (`_escape_lines`), fenced code as it is."""
    out: list[str] = []
    block: list[str] = []
    fence = ""  # the open fence's marker
    for line in markdown.splitlines():
        opened = _FENCE.match(line)
        if fence or opened or not line.strip():
            out += _escape_lines(block)
            block = []
            if fence and opened and opened.group(1).startswith(fence):
                fence = ""
            elif not fence and opened:
                fence = opened.group(1)
            out.append(line)
        else:
            block.append(line)
    out += _escape_lines(block)
    return "\n".join(out)


def _cell(value: Any) -> str:
    """A table cell: one line (GitHub parses each cell on its own), escaped, pipes too; with a
    pipe in it, fully escaped (a backslash before it might still split the cell)."""
    text = str(value).replace("\n", " ")
    escaped = text.translate(_ENTITIES) if "|" in text else _escape_lines([text])[0]
    return escaped.replace("|", "\\|")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    align = align or "-" * len(headers)
    spec = {"-": "---", ":": "---:"}
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "|" + "|".join(spec[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _time(stamp: datetime | None) -> str:
    return "—" if stamp is None else stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _metric(key: str, metrics: dict[str, Any], noun: str) -> tuple[str, str]:
    spec = catalog.BY_KEY[key]
    return spec.title(noun), spec.show(spec.value(metrics))


def team_sections(text: str) -> dict[str, str]:
    """The `## ` sections of the team's Markdown file (heading -> its text)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def _team(pack: Pack, name: str) -> str:
    text = pack.team.get(name)
    return _prose(text) if text else f"_Not stated: {pack.team_source} has no `## {name}` section._"


# --- the sections ------------------------------------------------------------------------------


def header(pack: Pack) -> list[Block]:
    i, card = pack.identity, pack.identity.card
    now = i.in_production_now
    if now is not None and now.version == i.label:
        status = f"**In production ({i.production}) now**, since {_time(now.start)}."
    elif any(p.stage == i.production for p in i.periods):
        status = f"Was in production ({i.production}); {now.version if now else 'nothing'} is now."
    else:
        status = f"Never in production ({i.production}) so far."
    title = f"# Audit pack: {i.project} {i.label} (model `{card.version}`)"
    facts = (
        f"Model `{card.version}` ({card.kind}), commit `{i.commit[:12]}`"
        + (" with uncommitted changes" if i.dirty else "")
        + f". {status}"
    )
    toc = [
        "1. [Identity](#1-identity)",
        "2. [Intended use and limits](#2-intended-use-and-limits)",
        "3. [Data lineage and governance](#3-data-lineage-and-governance)",
        "4. [Performance](#4-performance)",
        "5. [Explanations](#5-explanations)",
        "6. [Comparison with the previous production version]"
        "(#6-comparison-with-the-previous-production-version)",
        "7. [Monitoring](#7-monitoring)",
        "8. [Environment](#8-environment)",
    ]
    notes = [f"> Note: {n}" for n in pack.notes]
    return [title, facts, "\n".join(toc), *notes]


def identity(pack: Pack) -> list[Block]:
    i, card = pack.identity, pack.identity.card
    registered = (
        f"{i.registered.version} ({i.registered.tag}, {_time(i.registered.registered_at)}, "
        f"by {i.registered.author or 'unknown'})"
        if i.registered
        else "not registered (`make register` on a commit of `registry.branch`)"
    )
    rows = [
        ("Registry", f"`{i.artifact}` {registered}"),
        ("Model version", f"`{card.version}` (the first 12 hex digits of its sha256)"),
        ("Model sha256", f"`{card.sha256}`"),
        ("Estimator", f"{card.kind}, scikit-learn {card.sklearn_version}"),
        ("Predicts", f"P({card.label} = {card.positive!r})"),
        ("Git commit", f"`{i.commit}` ({i.commit_date}: {i.commit_subject})"),
        ("dvc.lock sha256", f"`{i.dvc_lock_sha256}`"),
        ("Service / bento", f"`{i.project}:{card.version}`"),
        (
            "Image digest",
            f"`{i.image_digest}`"
            if i.image_digest
            else "not known here (deploy.yml resolves it from the registry: `<image>:<commit>`)",
        ),
    ]
    out: list[Block] = ["## 1. Identity", _table(["", ""], rows)]
    if i.periods:
        periods = [
            (
                p.stage,
                _time(p.start),
                _time(p.end) if p.end else "now",
                p.tag,
                p.author or "—",
                p.message or "—",
            )
            for p in i.periods
        ]
        out += ["**Stages held**", _table(["Stage", "From", "Until", "Tag", "By", "Why"], periods)]
    else:
        out.append("**Stages held**: none.")
    if i.events:
        events = [
            (_time(e.timestamp), e.event, e.stage or "—", e.tag, e.author or "—") for e in i.events
        ]
        out += [
            "**Registry history of this version**",
            _table(["When", "Event", "Stage", "Tag", "By"], events),
        ]
    return out


def intended(pack: Pack) -> list[Block]:
    return [
        "## 2. Intended use and limits",
        f"_From {pack.team_source}: the team's own statement._",
        f"### {INTENDED_USE}",
        _team(pack, INTENDED_USE),
        f"### {LIMITS}",
        _team(pack, LIMITS),
    ]


def data(pack: Pack) -> list[Block]:
    d = pack.data
    rows: list[tuple[str, str, str, str]] = []
    for stage in d.lineage:
        for path, md5 in stage.data_deps:
            rows.append((stage.stage, "input", f"`{path}`", f"`{md5}`"))
        for path, md5, size in stage.outs:
            shown = f"`{md5}`" + (f" ({size:,} bytes)" if size is not None else "")
            rows.append((stage.stage, "output", f"`{path}`", shown))
    summary = [
        ("Source (`data.source`)", f"`{d.source}`"),
        ("Rows validated", "—" if d.rows is None else f"{d.rows:,}"),
        (
            "Training rows / test rows",
            f"{d.n_train:,} / " + ("—" if d.n_test is None else f"{d.n_test:,}"),
        ),
        (
            f"{pack.performance.noun[:1].upper()}{pack.performance.noun[1:]} rate (all rows)",
            "—" if d.label_rate is None else f"{d.label_rate:.2%}",
        ),
        (
            "Time span",
            f"`{d.time_span[0]}`: {d.time_span[1]} to {d.time_span[2]}"
            if d.time_span
            else d.time_note,
        ),
        (
            "Validation",
            "passed: every column of the schema"
            + (f" ({d.n_columns} columns" if d.n_columns else " (")
            + (f", {d.n_checks} cross-column rule(s))" if d.n_checks is not None else ")")
            + "; a failing table stops the pipeline before training",
        ),
    ]
    nulls = [(f"`{c}`", f"{r:.2%}") for c, r in sorted(d.null_rate.items())]
    excluded = [(f"`{e.name}`", e.kind, e.reason) for e in d.excluded]
    pii = ", ".join(f"`{c}`" for c in d.pii) or "none marked (`pii=True` in the schema)"
    out: list[Block] = [
        "## 3. Data lineage and governance",
        _table(["", ""], summary),
        "### Every hash from raw data to model (dvc.lock)",
        "Each file's md5 as DVC recorded it; `dvc pull` at the commit restores these bytes.",
        _table(["Stage", "", "Path", "md5"], rows),
    ]
    if nulls:
        out += [
            "**Missing values** (allowed by the schema, share of rows)",
            _table(["Column", "Missing"], nulls, "-:"),
        ]
    out += [
        "### Data governance",
        f"**Provenance.** {_team(pack, PROVENANCE)}",
        f"**Terms of use.** {_team(pack, TERMS)}",
        f"**Personal data.** {_team(pack, PERSONAL_DATA)}",
        f"**PII columns** (marked in the schema, never features): {pii}.",
        f"**Features** ({len(d.features)}): " + ", ".join(f"`{f}`" for f in d.features) + ".",
    ]
    if excluded:
        out += [
            "**Columns excluded from the features**",
            _table(["Column", "Kind", "Why"], excluded),
        ]
    return out


def performance(pack: Pack, previous: Comparison | None) -> list[Block]:
    p = pack.performance
    money = [
        _metric(m.key, p.metrics, p.noun) for m in catalog.METRICS if m.key.startswith("business.")
    ]
    ml = [_metric(m.key, p.metrics, p.noun) for m in catalog.METRICS if m.key.startswith("ml.")]
    verdict = (
        "**Gate: passed** (every floor of this version's `gate` in params.yaml)."
        if not p.misses
        else "**Gate: missed**: " + _text("; ".join(p.misses))
    )
    b = p.business
    break_even = catalog.BY_KEY["business.break_even_precision"].show(
        catalog.value(p.metrics, "business.break_even_precision")
    )
    why = (
        f"A record is contacted when its probability is at least **{p.threshold:.4f}**. The "
        f"threshold was chosen on the training data by {p.cv_folds or 'k'}-fold "
        "cross-validation to maximise expected profit (scikit-learn TunedThresholdClassifierCV), "
        f"not set at 0.5: a contact costs {b.get('contact_cost')}, and a contact of a "
        f"{p.positive_name} record succeeds with probability {b.get('success_rate')}, worth "
        f"{b.get('success_value')}; so a contact pays off when the precision exceeds "
        f"{break_even} (break-even precision). Cross-validated profit at the threshold: "
        f"{p.expected_profit_cv:,.0f}."
    )
    out: list[Block] = [
        "## 4. Performance",
        f"On the held-out test set ({p.metrics.get('n_test', 0):,} rows). {verdict}",
        "### Business metrics",
        _table(["Metric", "Value"], money, "-:"),
        "### ML metrics",
        _table(["Metric", "Value"], ml, "-:"),
        "### The decision threshold and why",
        why,
    ]
    if p.confusion:
        c = p.confusion
        out += [
            "### Confusion matrix at the threshold",
            _table(
                ["actual \\ decision", "contact", "no contact"],
                [
                    (f"**{p.positive_name}**", f"{c['tp']:,}", f"{c['fn']:,}"),
                    (f"**{p.negative_name}**", f"{c['fp']:,}", f"{c['tn']:,}"),
                ],
                "-::",
            ),
        ]
    out.append("### Calibration")
    if p.calibration:
        rows = [
            (
                f"{b.low:.1f} to {b.high:.1f}",
                f"{b.n:,}",
                f"{b.mean_predicted:.3f}",
                f"{b.observed:.3f}",
                f"{b.observed - b.mean_predicted:+.3f}",
            )
            for b in p.calibration
        ]
        out += [
            "Predicted probability against the observed rate per band of predictions (a "
            "calibrated model has them equal); Brier score "
            + catalog.BY_KEY["ml.brier"].show(catalog.value(p.metrics, "ml.brier"))
            + ".",
            _table(["Predicted", "Rows", "Mean predicted", "Observed", "Gap"], rows, "-::::"),
            Chart(
                title="Calibration: observed rate (bars) vs mean prediction (line)",
                categories=tuple(f"{b.low:.1f}" for b in p.calibration),
                series=(
                    Series(
                        "observed rate",
                        "bar",
                        tuple(b.observed for b in p.calibration),
                        charts.BLUE,
                    ),
                    Series(
                        "mean predicted",
                        "line",
                        tuple(b.mean_predicted for b in p.calibration),
                        charts.ORANGE,
                    ),
                ),
                y_label="Share positive",
                y_range=(0.0, 1.0),
                x_label="Predicted probability (band start)",
            ),
        ]
    else:
        out.append(p.calibration_note)
    out += segments(pack, previous)
    return out


def segments(pack: Pack, previous: Comparison | None) -> list[Block]:
    p = pack.performance
    groups = p.metrics.get("segments", {})
    rows = []
    for column, values in groups.items():
        for value, g in values.items():
            rows.append(
                (
                    f"{column} = {value}",
                    f"{int(g['n']):,}",
                    f"{g['positive_rate']:.2%}",
                    f"{g['roc_auc']:.4f}",
                    f"{g['precision']:.4f}",
                    f"{g['recall']:.4f}",
                    f"{g['profit_per_record']:,.2f}",
                )
            )
    gaps = [
        (
            f"`{g.column}`",
            f"{g.best[0]} ({g.best[1]:.4f})",
            f"{g.worst[0]} ({g.worst[1]:.4f})",
            f"{g.gap:.4f}",
            "not guarded" if g.limit is None else f"{g.limit:.4f}",
            "—" if g.limit is None else ("within" if g.gap <= g.limit + 1e-9 else "EXCEEDED"),
        )
        for g in p.gaps
    ]
    out: list[Block] = ["### Per segment, and the fairness gaps the gate guards"]
    if not rows:
        return [*out, "No segment has enough rows of each class to be scored."]
    out += [
        _table(
            ["Segment", "Rows", "Positive rate", "ROC AUC", "Precision", "Recall", "Profit/record"],
            rows,
            "-::::::",
        ),
        "The gate limits the gap between the best and the worst segment's ROC AUC for the "
        "columns in `gate.max_segment_roc_auc_gap` (where a gap means records are served "
        "unequally); the others are reported.",
        _table(["Column", "Best", "Worst", "Gap", "Limit", ""], gaps, "---:::"),
    ]
    return out


def explanations(pack: Pack) -> list[Block]:
    e = pack.explanations
    out: list[Block] = ["## 5. Explanations"]
    if e.importance:
        top = e.importance[:10]
        high = max(v for _, v in top) * 1.1 or 0.01
        out += [
            "### Global: permutation importance",
            "The drop in ROC AUC on the test set when one feature's values are shuffled "
            "(the evaluate stage).",
            _table(
                ["Feature", "Importance"], [(f"`{f}`", f"{v:.4f}") for f, v in e.importance], "-:"
            ),
            Chart(
                title=f"Permutation importance, top {len(top)} (drop in ROC AUC)",
                categories=tuple(f for f, _ in top),
                series=(Series("importance", "bar", tuple(v for _, v in top), charts.BLUE),),
                y_label="Importance",
                y_range=(min(0.0, *(v for _, v in top)), high),
                horizontal=True,
            ),
        ]
    differing = [s for s in e.segments if s.differs]
    whole = {s.column: s for s in e.segments if not s.differs and s.segment == ALL}
    if e.segments:
        out += [
            "### Per segment, where it differs",
            f"Mean absolute contribution of each feature (log-odds, from the exact per-decision "
            f"explanations) per segment; a segment is listed when its top {e.top_n} features "
            f"are not the whole test set's.",
        ]
        rows = [
            (
                f"{s.column} = {s.segment}",
                f"{s.n_rows:,}",
                ", ".join(f"`{t}`" for t in s.top),
                ", ".join(f"`{t}`" for t in whole[s.column].top) if s.column in whole else "—",
                f"{s.rank_correlation:.2f}",
            )
            for s in differing
        ]
        if rows:
            out.append(
                _table(
                    [
                        "Segment",
                        "Rows explained",
                        f"Its top {e.top_n}",
                        f"Whole test set's top {e.top_n}",
                        "Rank correlation",
                    ],
                    rows,
                    "-:--:",
                )
            )
        else:
            out.append(f"Every segment has the same top {e.top_n} features as the whole test set.")
    if e.decisions:
        out += [
            "### Representative decisions",
            "Each record's log-odds = base value + the contributions (exact for the model); "
            "the probability is the model's own.",
        ]
        for d in e.decisions:
            x = d.explanation
            decision = "contact" if x.contact else "no contact"
            lines = [f"- {_text(c.text)}" for c in x.contributions]
            out += [
                f"**{_text(x.key)}**: probability {x.probability:.4f}, **{decision}** ({d.why}); "
                f"base value {x.base_value:+.3f} log-odds.",
                "\n".join(lines),
            ]
    if e.note:
        out.append(f"_{_text(e.note)}_")
    return out


def comparison(pack: Pack) -> list[Block]:
    prev = pack.previous
    out: list[Block] = ["## 6. Comparison with the previous production version"]
    c = prev.comparison
    if c is None:
        return [*out, _text(prev.note)]
    base = prev.version or c.base.name
    out.append(
        f"Against **{_text(base)}** (commit `{c.base.commit[:12]}`), {_text(prev.note)}, by the "
        "pull-request comparison (`review/compare.py`)."
    )
    if c.not_comparable:
        out.append(f"> Not like-for-like: {_text(c.not_comparable)}.")
    elif c.like_for_like:
        out.append(
            f"> Like-for-like: {_text(base)}'s model was re-scored on this version's test set "
            "because " + _text("; and ".join(c.like_for_like)) + "."
        )
    rows = []
    for r in c.metrics:
        spec = catalog.BY_KEY[r.key]
        rows.append(
            (
                r.label,
                spec.show(r.base),
                spec.show(r.branch),
                spec.show_delta(r.delta),
                MARKERS[r.marker],
            )
        )
    out += [_table(["Metric", base, pack.identity.label, "Δ", ""], rows, "-:::-")]
    if c.params:
        changes = [
            (f"`{p.key}`", f"`{json.dumps(p.base)}`", f"`{json.dumps(p.branch)}`") for p in c.params
        ]
        out += ["**Params changed**", _table(["Key", base, pack.identity.label], changes)]
    else:
        out.append("No key of `params.yaml` changed.")
    data_rows = [(d.label, d.base, d.branch, "changed" if d.changed else "same") for d in c.data]
    out += ["**Data**", _table(["", base, pack.identity.label, ""], data_rows, "-::-")]
    worse = [s for s in c.segments if s.worse_beyond_tolerance]
    out.append(
        "No segment got worse beyond `gate.max_segment_roc_auc_drop`."
        if not worse
        else "Segments worse beyond tolerance: "
        + ", ".join(_text(f"{s.column} = {s.value}") for s in worse)
    )
    if c.base_plots and c.branch.plots and c.base_plots.roc and c.branch.plots.roc:
        from mlops_template.review.compare import resample_roc

        out.append(
            Chart(
                title="ROC curves on the same test set",
                categories=(),
                series=(
                    Series(base, "line", tuple(resample_roc(c.base_plots.roc)), charts.GREY),
                    Series(
                        pack.identity.label,
                        "line",
                        tuple(resample_roc(c.branch.plots.roc)),
                        charts.BLUE,
                    ),
                ),
                y_label="True positive rate",
                y_range=(0.0, 1.0),
                x_label="False positive rate",
                x_range=(0.0, 1.0),
            )
        )
    verdict = "passed" if c.passed else "missed: " + _text("; ".join(c.misses))
    out.append(f"The pull-request gate of this version against {_text(base)}: {verdict}.")
    return out


def monitoring(pack: Pack) -> list[Block]:
    out: list[Block] = ["## 7. Monitoring"]
    summary = pack.monitoring
    if summary is None:
        return [*out, f"No monitoring summary (`{pack.monitoring_source}` does not exist)."]
    window = summary.get("window") or {}
    about = window.get("model_version")
    if about is None:
        scope = ""
    elif about == pack.identity.card.version:
        scope = " It watched this model."
    else:
        scope = f" It watched model {_text(about)}, **not this one**."
    facts = [
        (key, f"`{json.dumps(summary[key])}`")
        for key in ("status", "retrain", "generated_at")
        if key in summary
    ]
    out.append(f"The latest summary of the monitoring job, `{pack.monitoring_source}`.{scope}")
    if facts:
        out.append(_table(["", ""], facts))
    if pack.monitoring_text:
        out.append(_prose(demote(pack.monitoring_text, 2)))
    return out


def demote(markdown: str, levels: int) -> str:
    """Headings `levels` deeper (a document included under one of the pack's sections)."""
    fenced = False
    lines = []
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            line = "#" * levels + line
        lines.append(line)
    return "\n".join(lines)


def environment(pack: Pack) -> list[Block]:
    env = pack.environment
    rows = [
        ("Python", env.python),
        ("Base image", f"`{env.base_image}`"),
        ("scikit-learn (the model's)", env.sklearn),
        ("uv.lock sha256", f"`{env.uv_lock_sha256}`" if env.uv_lock_sha256 else "—"),
        (
            "Locked packages",
            f"{len(env.packages)} at run time (what the image installs), "
            f"{env.locked_total} in uv.lock",
        ),
    ]
    packages = _table(["Package", "Version"], env.packages)
    return [
        "## 8. Environment",
        _table(["", ""], rows),
        Details(f"Runtime packages ({len(env.packages)})", packages),
    ]


def footer(pack: Pack) -> list[Block]:
    i = pack.identity
    how = f"`make audit VERSION={i.label}`" if i.registered else "`make audit` (the work tree)"
    return [
        "---",
        f"_Made by {how} from git (commit `{i.commit[:12]}`, registry tags) and DVC (the "
        "files dvc.lock records, from the cache or the remote). Nothing in it was typed by "
        "hand except the team's sections from the intended-use file._",
    ]


def blocks(pack: Pack) -> list[Block]:
    return [
        *header(pack),
        *identity(pack),
        *intended(pack),
        *data(pack),
        *performance(pack, pack.previous.comparison),
        *explanations(pack),
        *comparison(pack),
        *monitoring(pack),
        *environment(pack),
        *footer(pack),
    ]


# --- Markdown and HTML -------------------------------------------------------------------------


def _markdown(part: Block) -> str:
    if isinstance(part, Chart):
        return part.mermaid()
    if isinstance(part, Details):
        return f"<details><summary>{_text(part.summary)}</summary>\n\n{part.body}\n\n</details>"
    return part


def to_markdown(parts: Sequence[Block]) -> str:
    return "\n\n".join(_markdown(p) for p in parts) + "\n"


CSS: Final = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1b1f24; margin: 0; background: #f6f8fa; }
main { max-width: 980px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.7em; border-bottom: 2px solid #1f77b4; padding-bottom: .3em; }
h2 { font-size: 1.35em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; vertical-align: top; }
th { background: #f0f3f6; }
tr:nth-child(even) td { background: #fafbfc; }
code { font: .88em ui-monospace, SFMono-Regular, Menlo, monospace; background: #f0f3f6;
       padding: 1px 4px; border-radius: 3px; word-break: break-all; }
blockquote { margin: .8em 0; padding: .4em 1em; border-left: 4px solid #ff7f0e;
             background: #fff8f0; }
figure { margin: 1em 0; }
details { margin: .8em 0; }
summary { cursor: pointer; font-weight: 600; }
@media print { body { background: #fff; } main { max-width: none; } details { display: block; } }
"""


def to_html(parts: Sequence[Block], title: str) -> str:
    """One page: the Markdown rendered (commonmark + tables) with raw HTML off, so nothing in
    a text can become markup; the charts (inline SVG) and collapsed sections are put in after
    rendering, in place of a paragraph holding a token no text can guess."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    token = f"block{secrets.token_hex(16)}"
    inserts: dict[str, str] = {}
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        key = f"{token}x{len(inserts)}"
        if isinstance(part, Chart):
            inserts[key] = f'<figure class="chart">{part.svg()}</figure>\n'
        else:
            inserts[key] = (
                f"<details><summary>{_escape(part.summary)}</summary>\n"
                f"{renderer.render(part.body)}</details>\n"
            )
        texts.append(key)
    body = renderer.render("\n\n".join(texts))
    body = re.sub(rf"<p>({token}x\d+)</p>\n", lambda m: inserts.pop(m.group(1)), body)
    if inserts:
        raise ValueError(f"{len(inserts)} chart(s) or section(s) lost in rendering")
    body = _anchor_headings(body)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def _escape(text: str) -> str:
    from html import escape

    return escape(text)


def _anchor_headings(html: str) -> str:
    """GitHub's heading anchors (`## 1. Identity` -> id="1-identity"), so the contents work."""

    def anchor(match: re.Match[str]) -> str:
        level, inner = match.group(1), match.group(2)
        plain = re.sub(r"<[^>]+>", "", inner).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", plain).replace(" ", "-")
        return f'<h{level} id="{slug}">{inner}</h{level}>'

    return re.sub(r"<h([1-3])>(.*?)</h\1>", anchor, html)


def to_json(pack: Pack) -> dict[str, Any]:
    """The pack's facts for machines (`audit.json`): identity, every hash, the numbers."""
    i, p, e, prev = pack.identity, pack.performance, pack.explanations, pack.previous
    c = prev.comparison
    return {
        "version": i.label,
        "model": {
            "version": i.card.version,
            "sha256": i.card.sha256,
            "kind": i.card.kind,
            "threshold": i.card.threshold,
        },
        "commit": i.commit,
        "dirty": i.dirty,
        "dvc_lock_sha256": i.dvc_lock_sha256,
        "image_digest": i.image_digest,
        "registry": {
            "artifact": i.artifact,
            "registered": i.registered.tag if i.registered else None,
            "periods": [
                {
                    "stage": x.stage,
                    "start": x.start.isoformat(),
                    "end": x.end.isoformat() if x.end else None,
                    "tag": x.tag,
                }
                for x in i.periods
            ],
        },
        "lineage": [
            {
                "stage": s.stage,
                "outs": [{"path": a, "md5": b, "size": n} for a, b, n in s.outs],
                "inputs": [{"path": a, "md5": b} for a, b in s.data_deps],
            }
            for s in pack.data.lineage
        ],
        "data": {
            "source": pack.data.source,
            "rows": pack.data.rows,
            "label_rate": pack.data.label_rate,
            "pii": list(pack.data.pii),
            "features": list(pack.data.features),
            "excluded": [x.name for x in pack.data.excluded],
        },
        "metrics": p.metrics,
        "gate_misses": list(p.misses),
        "calibration": [vars(b) for b in p.calibration],
        "explanations": {
            "importance": [{"feature": f, "importance": v} for f, v in e.importance],
            "segments": [s.to_dict() for s in e.segments],
            "decisions": [{"why": d.why, **d.explanation.to_dict()} for d in e.decisions],
            "note": e.note,
        },
        "previous": {
            "version": prev.version,
            "passed": c.passed if c else None,
            "misses": c.misses if c else [],
            "note": prev.note,
        },
        "environment": {
            "python": pack.environment.python,
            "base_image": pack.environment.base_image,
            "packages": dict(pack.environment.packages),
        },
        "notes": list(pack.notes),
    }
