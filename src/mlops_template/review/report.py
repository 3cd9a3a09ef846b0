"""The pull-request report: this branch against a base revision, verdict first.

`make report BASE=main` writes `paths.pr_report` (markdown: what CML posts as the one sticky PR
comment, and what CI writes to the job summary) and `paths.pr_report_json` (the same
comparison for machines). Charts are mermaid and tables, which GitHub renders itself, so the
comment needs no image host. When the comparison cannot be made, both files say so and the
command exits non-zero: a report never shows a table with one side missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_template.core import catalog, cli, uncertainty
from mlops_template.core import io as files
from mlops_template.core.errors import ProjectError
from mlops_template.core.params import Params, Project
from mlops_template.review import compare, experiments
from mlops_template.review.cli import add_base_arguments
from mlops_template.review.compare import ABSENT, Comparison
from mlops_template.review.revision import Plots, Side

log = logging.getLogger(__name__)

MARKERS = {
    "better": "🟢 better",
    "worse": "🔴 worse",
    "unchanged": "⚪ unchanged",
    "changed": "🔵 changed",
}
BASE_COLOUR, BRANCH_COLOUR = "#9e9e9e", "#1f77b4"  # grey: base, blue: this branch
ROC_POINTS = 21


def _cell(value: Any) -> str:
    """A value as a markdown table cell (pipes escaped, containers as JSON)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`".replace("|", "\\|") if value is not ABSENT else "_(absent)_"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _commit(side: Side) -> str:
    short = side.commit[:12] if side.commit else "no commit"
    return f"`{short}`" + (" + uncommitted changes" if side.dirty else "")


def verdict(c: Comparison) -> list[str]:
    base = c.base.name
    if c.passed:
        lines = [
            f"## ✅ PASS: this branch meets every gate rule against `{base}`",
            "",
            f"Every floor in `params.yaml` `gate` is met and no guarded metric or segment got "
            f"worse than on `{base}` by more than its tolerance.",
        ]
    else:
        n = len(c.misses)
        lines = [f"## ❌ FAIL: {n} gate rule{'s' if n > 1 else ''} missed against `{base}`", ""]
        lines += [f"- {miss}" for miss in c.misses]
    lines += [
        "",
        f"Compared: **this branch** {_commit(c.branch)} with **{base}** {_commit(c.base)}.",
    ]
    if any(p.key.startswith("gate.") for p in c.params):
        lines += ["", "> ⚠️ This branch changes the gate's own rules (see *Params changed*)."]
    return lines


def schema_section(c: Comparison) -> list[str]:
    """At the top when the numbers are not like-for-like: what differs, and what that means."""
    if c.not_comparable is None:
        return []
    lines = [
        "",
        f"> 🧭 **Not like-for-like:** {c.not_comparable}.",
        f"> Each side's metrics below are its own, on its own test set; the gate applied the "
        f"floors and `gate.on_schema_change` instead of the tolerances against `{c.base.name}`.",
    ]
    if c.schema_changes:
        lines += ["", "<details open><summary><b>Schema changes</b></summary>", ""]
        lines += [f"- {change}" for change in c.schema_changes]
        lines += ["", "</details>"]
    return lines


def like_for_like(c: Comparison) -> list[str]:
    if c.not_comparable is not None:
        return []
    if not c.like_for_like:
        return [
            "",
            f"Both models were scored on the same test set (same DVC hash), so `{c.base.name}`'s "
            "recorded metrics are compared as they are.",
        ]
    own = c.base.metrics
    recorded = ", ".join(
        f"{spec.label} {spec.show(spec.value(own))}"
        for spec in (catalog.BY_KEY["ml.roc_auc"], catalog.BY_KEY["business.expected_profit"])
    )
    return [
        "",
        f"> ⚖️ **Like-for-like:** the `{c.base.name}` model was re-scored on **this branch's "
        f"test set** ({c.branch.metrics.get('n_test', 0):,} rows) because "
        + "; and ".join(c.like_for_like)
        + f". Every `{c.base.name}` number below comes from that re-scoring, and the gate "
        f"used it. (On its own test set `{c.base.name}` recorded: {recorded}; "
        "not comparable.)",
    ]


def metrics_table(c: Comparison) -> list[str]:
    rows = []
    for r in c.metrics:
        spec = catalog.BY_KEY[r.key]
        relative = "—" if r.relative is None else f"{r.relative:+.2%}"
        rows.append(
            [
                r.label,
                spec.show(r.base),
                spec.show(r.branch),
                spec.show_delta(r.delta),
                relative,
                MARKERS[r.marker],
            ]
        )
    header = ["Metric", f"{c.base.name}", "this branch", "Δ", "Δ %", ""]
    return ["", "### Metrics", "", *_table(header, rows, ["---", *["---:"] * 4, "---"])]


VERDICTS = {
    "better": "🟢 better beyond noise",
    "worse": "🔴 worse beyond noise",
    "noise": "⚪ within noise",
}


def uncertainty_section(c: Comparison, params: Params) -> list[str]:
    """The paired-bootstrap interval of each compared metric's difference, in plain words."""
    lines = ["", "### Is the difference more than noise?", ""]
    u, base = c.uncertainty, c.base.name
    if u is None:
        return [*lines, f"No paired bootstrap: {c.uncertainty_note}."]
    share = f"{u.confidence:.0%}"
    rows = []
    for key in uncertainty.COMPARED:
        i, spec = u.intervals[key], catalog.BY_KEY[key]
        rows.append(
            [
                spec.title(params.project.label_noun),
                spec.show_delta(i.delta),
                f"{spec.show_delta(i.low)} to {spec.show_delta(i.high)}",
                VERDICTS[i.verdict],
            ]
        )
    primary = u.intervals[params.uncertainty.primary]
    gate_rule = (
        f" `gate.require_significant_improvement` is on: this branch must also improve "
        f"{catalog.BY_KEY[primary.key].label.lower()} beyond noise to pass."
        if params.gate.require_significant_improvement
        else " The gate's tolerances decide the verdict above; these intervals only inform it."
    )
    return [
        *lines,
        f"Paired bootstrap on this branch's test set: {u.resamples:,} resamples of its "
        f"{u.n_rows:,} rows (seed {u.seed}), both models scored on the same resampled rows; "
        f"{share} intervals of the difference (this branch minus `{base}`).",
        "",
        *_table(["Metric", "Δ", f"{share} interval", ""], rows, ["---", "---:", "---:", "---"]),
        "",
        f"**In plain words:** {primary.words(u.confidence, params.project.label_noun)}. An "
        "interval that includes 0 means another test set of this size could rank the two "
        "models the other way; it says nothing about another seed, split or future data."
        + gate_rule,
    ]


def experiments_section(found: Sequence[experiments.Experiment], c: Comparison) -> list[str]:
    """The experiments run on this branch's commit (`dvc exp show` lists them)."""
    if not found:
        return []
    rows = [
        [
            f"`{e.name}`",
            ", ".join(experiments.changed_params(c.branch.params, e.params)) or "—",
            *(
                catalog.BY_KEY[k].show(e.metric(k))
                for k in ("business.expected_profit", "ml.roc_auc", "threshold")
            ),
        ]
        for e in sorted(found, key=lambda e: -(e.metric("business.expected_profit") or 0.0))
    ]
    header = ["Experiment", "Params changed", "Expected profit", "ROC AUC", "Threshold"]
    return [
        "",
        f"<details><summary><b>Experiments</b>: {len(found)} run on this branch's commit "
        "</summary>",
        "",
        f"Run with `dvc exp run` on `{c.branch.commit[:12]}`; each row is that experiment's "
        "own metrics.json (`make experiments-table` ranks them with intervals against the "
        "commit's model; `dvc exp branch <name> <branch>` promotes one).",
        "",
        *_table(header, rows, ["---", "---", "---:", "---:", "---:"]),
        "",
        "</details>",
    ]


def params_section(c: Comparison) -> list[str]:
    lines = ["", "### Params changed", ""]
    if not c.params:
        return [*lines, f"No key of `params.yaml` differs from `{c.base.name}`."]
    rows = [[f"`{p.key}`", _cell(p.base), _cell(p.branch)] for p in c.params]
    return [*lines, *_table(["Key", c.base.name, "this branch"], rows, ["---"] * 3)]


def data_section(c: Comparison) -> list[str]:
    rows = [[d.label, d.base, d.branch, "changed" if d.changed else "same"] for d in c.data]
    header = ["", c.base.name, "this branch", ""]
    return ["", "### Data", "", *_table(header, rows, ["---", "---:", "---:", "---"])]


def segments_section(c: Comparison) -> list[str]:
    if not c.segments:
        return []
    flagged = [s for s in c.segments if s.worse_beyond_tolerance]
    rows = []
    for s in c.segments:
        delta = None if s.base_roc_auc is None else s.branch_roc_auc - s.base_roc_auc
        flag = "🔴 worse beyond tolerance" if s.worse_beyond_tolerance else ""
        rows.append(
            [
                f"{s.column} = {s.value}",
                f"{s.n:,}",
                "—" if s.base_roc_auc is None else f"{s.base_roc_auc:.4f}",
                f"{s.branch_roc_auc:.4f}",
                "—" if delta is None else f"{delta:+.4f}",
                "—" if s.base_profit is None else f"{s.base_profit:,.2f}",
                f"{s.branch_profit:,.2f}",
                flag,
            ]
        )
    base = c.base.name
    header = [
        "Segment",
        "n",
        f"ROC AUC {base}",
        "ROC AUC branch",
        "Δ",
        f"Profit/record {base}",
        "Profit/record branch",
        "",
    ]
    summary = (
        f"{len(flagged)} segment(s) worse beyond tolerance"
        if flagged
        else "no segment worse beyond tolerance"
    )
    return [
        "",
        f"<details><summary><b>Segments</b>: {summary}</summary>",
        "",
        *_table(header, rows, ["---", *["---:"] * 6, "---"]),
        "",
        "</details>",
    ]


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def xychart_start(palette: str) -> list[str]:
    """Opening of a mermaid xychart block whose series take the colours in `palette`."""
    return [
        "```mermaid",
        "---",
        "config:",
        "  themeVariables:",
        "    xyChart:",
        f'      plotColorPalette: "{palette}"',
        "---",
    ]


def roc_chart(base: Plots | None, branch: Plots | None) -> list[str]:
    series = [
        (colour, compare.resample_roc(p.roc, ROC_POINTS))
        for colour, p in ((BASE_COLOUR, base), (BRANCH_COLOUR, branch))
        if p is not None and p.roc
    ]
    if not series:
        return []
    return [
        *xychart_start(", ".join(colour for colour, _ in series)),
        "xychart-beta",
        '    title "ROC curve (same test set)"',
        '    x-axis "False positive rate" 0 --> 1',
        '    y-axis "True positive rate" 0 --> 1',
        *[f"    line {_numbers(values)}" for _, values in series],
        "```",
    ]


def importance_chart(base: Plots | None, branch: Plots | None, top_n: int) -> list[str]:
    if branch is None or not branch.importance:
        return []
    top = branch.importance[:top_n]
    features = [name for name, _ in top]
    bars = [value for _, value in top]
    base_by_name = dict(base.importance) if base else {}
    line = [base_by_name.get(name) for name in features]
    has_line = base_by_name and all(v is not None for v in line)
    values = bars + ([v for v in line if v is not None] if has_line else [])
    low, high = min(0.0, *values), max(values) * 1.1 or 0.01
    colours = f"{BRANCH_COLOUR}, {BASE_COLOUR}" if has_line else BRANCH_COLOUR
    return [
        *xychart_start(colours),
        "xychart-beta horizontal",
        f'    title "Permutation importance, top {len(features)} (drop in ROC AUC)"',
        "    x-axis [" + ", ".join(f'"{name}"' for name in features) + "]",
        f'    y-axis "Importance" {low:.4f} --> {high:.4f}',
        f"    bar {_numbers(bars)}",
        *([f"    line {_numbers([v for v in line if v is not None])}"] if has_line else []),
        "```",
    ]


def confusion_table(c: Comparison, project: Project) -> list[str]:
    base, branch = c.base_plots, c.branch.plots
    if base is None or branch is None:
        return []
    b, r, name = base.confusion, branch.confusion, c.base.name
    yes, no = project.positive_name, project.negative_name
    rows = [
        [f"**{yes}**", f"{b['tp']:,}", f"{b['fn']:,}", f"{r['tp']:,}", f"{r['fn']:,}"],
        [f"**{no}**", f"{b['fp']:,}", f"{b['tn']:,}", f"{r['fp']:,}", f"{r['tn']:,}"],
    ]
    header = [
        "actual \\ decision",
        f"contact ({name})",
        f"no contact ({name})",
        "contact (branch)",
        "no contact (branch)",
    ]
    return _table(header, rows, ["---", *["---:"] * 4])


def plots_section(c: Comparison, params: Params) -> list[str]:
    return [
        "",
        "<details><summary><b>Plots</b>: ROC curves, feature importance, confusion matrices"
        "</summary>",
        "",
        f"ROC curves: grey = `{c.base.name}`, blue = this branch (true positive rate at each "
        "false positive rate).",
        "",
        *roc_chart(c.base_plots, c.branch.plots),
        "",
        f"Feature importance: bars = this branch, grey line = `{c.base.name}`.",
        "",
        *importance_chart(c.base_plots, c.branch.plots, params.report.importance_top_n),
        "",
        "Confusion matrices at each model's own decision threshold"
        + (" (same test set):" if c.not_comparable is None else " (each on its own test set):"),
        "",
        *confusion_table(c, params.project),
        "",
        "</details>",
    ]


def lineage(c: Comparison) -> list[str]:
    def model(side: Side) -> str:
        return f"`{side.card.version}`" if side.card else "—"

    def data(side: Side, key: str) -> str:
        md5 = side.out_hash(key)
        return f"`{md5}`" if md5 else "—"

    rows = [
        [
            "Commit",
            f"`{c.base.commit}`",
            f"`{c.branch.commit}`" + (" (dirty)" if c.branch.dirty else ""),
        ],
        ["Model sha256", model(c.base), model(c.branch)],
        *[
            [f"Data md5 ({k})", data(c.base, k), data(c.branch, k)]
            for k in ("raw", "train", "test")
        ],
        ["Obtained from", c.base.origin, c.branch.origin],
    ]
    return [
        "",
        "<details><summary><b>Lineage</b>: commits, data and model hashes</summary>",
        "",
        *_table(["", c.base.name, "this branch"], rows, ["---"] * 3),
        "",
        "</details>",
    ]


def render(c: Comparison, params: Params, found: Sequence[experiments.Experiment] = ()) -> str:
    lines = [
        *verdict(c),
        *schema_section(c),
        *like_for_like(c),
        *metrics_table(c),
        *uncertainty_section(c, params),
        *params_section(c),
        *experiments_section(found, c),
        *data_section(c),
        *segments_section(c),
        *plots_section(c, params),
        *lineage(c),
    ]
    return "\n".join(lines) + "\n"


def render_error(base: str, reason: str) -> str:
    return (
        f"## ⚠️ NO COMPARISON: the report against `{base}` could not be built\n\n"
        f"{reason}\n\n"
        "Nothing here compares the two revisions, so this pull request has no verdict yet. "
        "Fix the cause above and run `make report` again.\n"
    )


def to_json(c: Comparison, found: Sequence[experiments.Experiment] = ()) -> dict[str, Any]:
    payload = dataclasses.asdict(c)
    if c.uncertainty is not None:
        for key, interval in c.uncertainty.intervals.items():
            payload["uncertainty"]["intervals"][key]["verdict"] = interval.verdict
    payload["experiments"] = [
        {
            "name": e.name,
            "commit": e.commit,
            "params": experiments.changed_params(c.branch.params, e.params),
            "metrics": {k: e.metric(k) for k in experiments.SHOWN},
        }
        for e in found
    ]
    for side, name in ((c.base, "base"), (c.branch, "branch")):
        payload[name]["card"] = side.card.model_dump(mode="json") if side.card else None
    payload["base_plots"] = None
    payload["branch"]["plots"] = payload["base"]["plots"] = None  # bulky; the curves follow
    payload["roc_resampled"] = {
        "fpr": [i / (ROC_POINTS - 1) for i in range(ROC_POINTS)],
        "base": compare.resample_roc(c.base_plots.roc, ROC_POINTS) if c.base_plots else None,
        "branch": compare.resample_roc(c.branch.plots.roc, ROC_POINTS) if c.branch.plots else None,
    }
    payload["confusion"] = {
        "base": c.base_plots.confusion if c.base_plots else None,
        "branch": c.branch.plots.confusion if c.branch.plots else None,
    }
    return {"status": "pass" if c.passed else "fail", **payload}


def _write(args: argparse.Namespace, params: Params, markdown: str, payload: Any) -> None:
    md_path = Path(args.out or params.paths.pr_report)
    json_path = Path(args.json or params.paths.pr_report_json)
    files.write_text(md_path, markdown)
    files.write_json(json_path, payload)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # GitHub Actions: the same report on the run's summary page
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(markdown)
    log.info("wrote %s and %s", md_path, json_path)


def _args(p: argparse.ArgumentParser) -> None:
    add_base_arguments(p, default="main", help="git revision to compare with (default: main)")
    p.add_argument("--out", help="markdown report (default: paths.pr_report)")
    p.add_argument("--json", help="JSON twin (default: paths.pr_report_json)")


def _experiments(c: Comparison) -> list[experiments.Experiment]:
    """The experiments of the branch's commit (local refs: `dvc exp pull` fetches others')."""
    if not c.branch.commit:
        return []
    try:
        return experiments.on_commit(Path.cwd(), c.branch.commit, c.branch.paths)
    except ProjectError as exc:
        log.warning("cannot list the experiments of %s: %s", c.branch.commit[:12], exc)
        return []


def _main(args: argparse.Namespace, params: Params) -> int:
    name = args.base_name or args.base
    try:
        comparison = compare.build(
            Path.cwd(), args.base, name, params, reproduce_if_needed=not args.no_reproduce
        )
    except ProjectError as exc:
        _write(args, params, render_error(name, str(exc)), {"status": "error", "error": str(exc)})
        raise
    found = _experiments(comparison)
    _write(args, params, render(comparison, params, found), to_json(comparison, found))
    log.info(
        "verdict: %s%s",
        "PASS" if comparison.passed else "FAIL",
        "".join(f"\n  - {m}" for m in comparison.misses),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("report", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
