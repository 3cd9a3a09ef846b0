"""`make monitor`: compact the production logs, compare the window with its reference, decide.

    python -m mlops_template.monitoring.monitor [--logs DIR] [--outcomes DIR] [--check]

1. The rotated JSON-lines logs in `--logs` (default: where the service writes them,
   `service.log_dir`) are compacted into one Parquet window under `monitor.window`; without
   logs, a window compacted before (or downloaded) is read instead.
2. The reference is found through the logged model version's lineage (`reference`).
3. The outcomes that have arrived are read from the file drop (`--outcomes`, default
   `monitor.outcomes`).
4. `analysis.analyse` compares and applies the rule; the window history (`monitor.state`) is
   updated.
5. `<monitor.reports>/summary.json` (machines), `summary.md` (the issue, the pull request, the
   job summary) and `report.html` (people) are written.

It exits 0 whatever it finds; `--check` (`make monitor-check`) exits 3 when the rule says
retrain, for CI. In GitHub Actions it also writes `status=`, `retrain=` and `window=` to
$GITHUB_OUTPUT and the markdown to $GITHUB_STEP_SUMMARY.

A standalone step, not a DVC stage: its input is production's logs, which change outside git
and DVC, and its output is a verdict about the deployed model, not an artifact of the
pipeline; as a stage, every `dvc repro` would re-run it and `dvc.lock` would change with logs
nobody versions (README, "Monitoring").
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_template.core import cli, events
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.monitoring import analysis, markdown, page, reference, rule, window

log = logging.getLogger(__name__)
SUMMARY_JSON, SUMMARY_MD, PAGE = "summary.json", "summary.md", "report.html"
RETRAIN_EXIT = 3  # --check: the rule says retrain


def load_window(logs: Path, out: Path, days: int | None) -> window.Window:
    found = window.compact(logs, out) if window.has_logs(logs) else window.read_window(out)
    return window.last_days(found, days)


def verdict_lines(s: dict[str, Any], report: Path) -> list[str]:
    w, d = s["window"], s["drift"]
    perf = s["performance"]
    drifted = ", ".join(f"{c['column']} ({c['reason']})" for c in d["columns"] if c["drifted"])
    lines = [
        f"monitor: {s['status']}, retrain: {str(s['retrain']).lower()}",
        f"  window {w['id']}: {w['records']:,} records, model {w['model_version']}, "
        f"{perf['labelled']:,} with outcomes",
        f"  drifted columns: {drifted or 'none'}"
        + (" (the table has drifted)" if d["dataset_drift"] else ""),
    ]
    if not s["quality"]["passed"]:
        lines += [f"  quality: {p['message']}" for p in s["quality"]["problems"]]
    lines += [f"  retrain because: {r}" for r in s["reasons"]]
    lines.append(f"  page: {report}")
    return lines


def github_outputs(s: dict[str, Any], md: str) -> None:
    """In GitHub Actions: the verdict as step outputs, the markdown as the job summary."""
    output, summary = os.environ.get("GITHUB_OUTPUT"), os.environ.get("GITHUB_STEP_SUMMARY")
    if output:
        with Path(output).open("a", encoding="utf-8") as fh:
            fh.write(f"status={s['status']}\nretrain={str(s['retrain']).lower()}\n")
            fh.write(f"window={s['window']['id']}\n")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(md + "\n")


def run_monitor(
    params: Params, logs: Path, outcomes_dir: Path, root: Path = Path()
) -> dict[str, Any]:
    """Everything `make monitor` does; returns the summary."""
    cfg = params.monitor
    found = load_window(logs, root / cfg.window, cfg.window_days)
    champions = window.versions(found.predictions, "champion")
    if not champions:
        raise InputError("the window holds no prediction of a champion model")
    version = next(iter(champions))
    ref = reference.find(root, params, version, TABLE)
    outcomes = window.read_outcomes(outcomes_dir, TABLE)
    state = root / cfg.state
    summary, history = analysis.analyse(
        found, outcomes, ref, params, rule.read_history(state), TABLE, events.utc_now()
    )
    summary["project"] = params.project.name
    reports = root / cfg.reports
    md = markdown.render(summary)
    files.write_json(reports / SUMMARY_JSON, summary)
    files.write_text(reports / SUMMARY_MD, md)
    title = f"{params.project.name} model monitoring"
    files.write_text(reports / PAGE, page.render(summary, title, cfg.drift.min_psi))
    rule.write_history(state, history)
    github_outputs(summary, md)
    return summary


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--logs", help="the service's log directory (default: service.log_dir)")
    p.add_argument("--outcomes", help="the outcome file drop (default: monitor.outcomes)")
    p.add_argument("--check", action="store_true", help=f"exit {RETRAIN_EXIT} when retrain is true")


def _main(args: argparse.Namespace, params: Params) -> int:
    logs = Path(args.logs) if args.logs else params.service.log_path()
    outcomes = Path(args.outcomes or params.monitor.outcomes)
    summary = run_monitor(params, logs, outcomes)
    report = Path(params.monitor.reports) / PAGE
    sys.stdout.write("\n".join(verdict_lines(summary, report)) + "\n")
    return RETRAIN_EXIT if args.check and summary["retrain"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("monitor", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
