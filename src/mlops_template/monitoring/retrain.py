"""`make retrain`: the labelled production window joins the training data; a challenger is
trained and compared with the champion on the same fresh records.

    python -m mlops_template.monitoring.retrain [--force] [--no-branch] [--outcomes DIR]

After `make monitor` said `retrain: true` (or with `--force`):

1. The window's records with an outcome (the champion's latest line per record, joined with
   the outcome file drop) become rows of the training table: the logged inputs and the label.
   Rows that break the schema are set aside (counted); a window that failed the quality check
   is refused: a model retrained on a broken feed learns the breakage.
2. Unless `--no-branch`, a git branch `<monitor.retrain.branch_prefix><window id>` is created.
3. The rows are written to `<monitor.retrain.windows>/<window id>.parquet` and tracked with
   `dvc add`: a new, DVC-tracked version of the training data. `policy: append` keeps every
   window (and the source); `policy: sliding` keeps the newest `keep_windows` (`dvc remove`
   drops the older ones; their versions stay in git and the DVC cache) and the ingest stage
   then reads only those.
4. `dvc repro` trains the challenger on the new data.
5. Champion and challenger are scored on the window's records that the new split held out
   (the new test set's rows from this window: the challenger never trained on them, and the
   champion predates them), with `core.metrics.score_metrics`, the function the evaluate stage
   and the pull-request report use. The challenger is promoted only if it earns more on them
   AND passes the gate (`core.gate`: the floors on its own metrics, and the regression
   tolerances against the champion on the same fresh records). With
   `gate.require_significant_improvement: true` it must also earn more beyond the noise of
   those records: the paired bootstrap interval of the profit per record, challenger minus
   champion (at `monitor.performance.confidence`), must lie above 0.
6. `reports/monitoring/retrain.{json,md}` record it (the markdown is the pull request's body,
   with the monitoring summary); with a branch, the new `.dvc` files, `dvc.lock` and the
   metrics are committed on it, so that `make report` compares it with the base.

In GitHub Actions it writes `promoted=` and `branch=` to $GITHUB_OUTPUT.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlops_template.core import catalog, cli, gate, metrics, repo
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.model import LoadedModel, load_model
from mlops_template.core.params import Gate, Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table
from mlops_template.core.validation import validate_records, validate_table
from mlops_template.monitoring import markdown, performance, reference, window
from mlops_template.monitoring.analysis import jsonable
from mlops_template.monitoring.monitor import SUMMARY_JSON, SUMMARY_MD
from mlops_template.monitoring.performance import Decisions, Interval

log = logging.getLogger(__name__)
RETRAIN_JSON, RETRAIN_MD = "retrain.json", "retrain.md"
SHOWN = (
    "business.expected_profit",
    "business.profit_per_record",
    "business.contact_rate",
    "ml.roc_auc",
    "ml.pr_auc",
    "ml.precision",
    "ml.recall",
    "ml.brier",
)


# --- the labelled window --------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledWindow:
    rows: pd.DataFrame  # the training table's columns, label last
    set_aside: dict[str, int]  # why rows were left out -> how many


def labelled_rows(labelled: pd.DataFrame, table: Table) -> LabelledWindow:
    """The records with outcomes as training rows; rows breaking the schema set aside."""
    label = table.label
    rows = window.inputs(labelled, table)
    rows[label.name] = np.where(labelled[window.Y].to_numpy() == 1, label.positive, label.negative)
    valid, failures = validate_records(rows, source="the labelled window", table=table)
    aside: dict[str, int] = {}
    if len(failures):
        for column, group in failures.groupby("column"):
            aside[f"breaks the schema's rules for '{column}'"] = int(group["index"].nunique())
    rows = rows.loc[valid.index]
    for check in table.checks:
        ok = check.passes(rows).to_numpy(dtype=bool)
        if not ok.all():
            aside[f"breaks the rule '{check.name}'"] = int((~ok).sum())
            rows = rows[ok]
    rows = validate_table(rows.reset_index(drop=True), source="the labelled window", table=table)
    return LabelledWindow(rows.loc[:, list(table.column_names)], aside)


# --- git and DVC ----------------------------------------------------------------------------


def _dvc(root: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise InputError(f"dvc {' '.join(args)} failed:\n  " + "\n  ".join(detail))
    if proc.stdout.strip():
        log.debug("dvc %s: %s", args[0], proc.stdout.strip())


def start_branch(root: Path, name: str) -> str:
    """Create and switch to `name` from HEAD; the branch it started from."""
    if repo.git(root, "status", "--porcelain", "--untracked-files=no"):
        raise InputError(
            "the work tree has uncommitted changes: commit or stash them first, so that the "
            "retraining branch holds the retraining only (or pass --no-branch)"
        )
    start = repo.git_or_none(root, "rev-parse", "--abbrev-ref", "HEAD") or "HEAD"
    if repo.git_or_none(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}"):
        raise InputError(f"branch {name} exists already: delete it or retrain another window")
    repo.git(root, "switch", "--quiet", "-c", name)
    return start


def add_window(
    root: Path, rows: pd.DataFrame, window_id: str, params: Params
) -> tuple[Path, list[Path]]:
    """Write the window's rows, `dvc add` them; with `policy: sliding`, `dvc remove` the
    windows beyond `keep_windows`. The new file and the removed ones."""
    cfg = params.monitor.retrain
    directory = root / cfg.windows
    path = directory / f"{window_id}.parquet"
    files.write_parquet(path, rows)
    _dvc(root, "add", "--quiet", str(path.relative_to(root)))
    removed: list[Path] = []
    if cfg.policy == "sliding":
        kept = sorted(directory.glob("*.parquet"))
        for old in kept[: max(0, len(kept) - cfg.keep_windows)]:
            _dvc(root, "remove", "--outs", str(old.relative_to(root)) + ".dvc")
            removed.append(old)
    return path, removed


def commit(root: Path, params: Params, message: str) -> None:
    """Commit the new window's `.dvc` file and every tracked file the retraining changed
    (dvc.lock, the metrics): the work tree was clean when the branch was made."""
    repo.git(root, "add", "-A", "--", params.monitor.retrain.windows)
    repo.git(root, "add", "-u")
    repo.git(root, "commit", "--quiet", "-m", message)


# --- champion vs challenger on the fresh records -------------------------------------------


def fresh_rows(test: pd.DataFrame, keys: set[str], table: Table) -> pd.DataFrame:
    """The test set's rows that came from this window."""
    assert table.id is not None
    return test[test[table.id.name].astype(str).isin(keys)].reset_index(drop=True)


def score(
    model: LoadedModel, rows: pd.DataFrame, params: Params
) -> tuple[dict[str, Any], Decisions]:
    """`model`'s metrics on `rows` (the evaluate stage's function) and its decisions."""
    with threadpool_limits(limits=params.model.n_threads):  # as review.compare scores
        proba = model.probability(rows)
    y = model.table.target(rows)
    scored = metrics.score_metrics(
        y, proba, model.threshold, rows.loc[:, list(params.evaluate.segments)],
        params.evaluate, params.business,
    )  # fmt: skip
    return scored, Decisions(y, proba, model.decide(proba))


def floors_missed(scored: dict[str, Any], cfg: Gate) -> set[str]:
    """The floor keys a model misses on a metrics payload."""
    return {
        key
        for key, bound in cfg.floors.items()
        if (value := catalog.BY_KEY[key].value(scored)) is None
        or gate.worsening(catalog.BY_KEY[key], bound, value) > gate.EPSILON
    }


def _shared_miss(key: str, challenger: dict[str, Any], champion: dict[str, Any], cfg: Gate) -> str:
    spec = catalog.BY_KEY[key]
    return (
        f"{key}: the challenger ({spec.show(spec.value(challenger))}) and the champion on the "
        f"fresh records ({spec.show(spec.value(champion))}) both miss the floor "
        f"{spec.show(cfg.floors[key])}"
    )


SIGNIFICANCE = "gate.require_significant_improvement"


def significance_misses(difference: Interval | None, cfg: Gate, confidence: float) -> list[str]:
    """`gate.require_significant_improvement` in the retraining loop: the challenger must earn
    more than the champion beyond the noise of the fresh records, i.e. the paired interval of
    the profit per record (challenger minus champion) must lie above 0. The loop promotes on
    profit, so it asks this of profit whatever `uncertainty.primary` names (the pull-request
    report's rule)."""
    if not cfg.require_significant_improvement:
        return []
    if difference is None or difference.value is None or difference.low is None:
        return [
            f"{SIGNIFICANCE}: no paired interval of the profit difference on the fresh records "
            "(too few of them to resample), so no improvement can be shown"
        ]
    assert difference.high is not None
    if difference.low > gate.EPSILON:
        return []
    span = (
        f"{difference.value:+,.3f} per record against the champion "
        f"({confidence:.0%} paired interval {difference.low:+,.3f} to {difference.high:+,.3f})"
    )
    if difference.high < -gate.EPSILON:
        return [f"{SIGNIFICANCE}: the challenger earns less on the fresh records, {span}"]
    return [
        f"{SIGNIFICANCE}: the challenger's profit on the fresh records, {span}, is not "
        "distinguishable from noise: the interval includes 0"
    ]


def compare(
    champion: LoadedModel, challenger: LoadedModel, fresh: pd.DataFrame,
    challenger_metrics: dict[str, Any], params: Params,
) -> dict[str, Any]:  # fmt: skip
    """Both models on the same fresh records; promoted only if the challenger earns more on
    them and passes the gate: the floors on its own metrics and the regression tolerances
    against the champion on the fresh records (and, with `gate.require_significant_improvement`,
    a profit gain beyond their noise: `significance_misses`). A floor the champion itself misses
    on the fresh records blocks only with `monitor.retrain.shared_floor_misses: block` (with
    "warn" it is reported: keeping a champion that misses it too would not meet it either)."""
    champ, champ_d = score(champion, fresh, params)
    chall, chall_d = score(challenger, fresh, params)
    (_, _), diff = performance.estimate(
        [champ_d, chall_d], params.business, params.monitor.performance
    )
    shared = sorted(
        floors_missed(champ, params.gate) & floors_missed(challenger_metrics, params.gate)
    )
    if params.monitor.retrain.shared_floor_misses == "block":
        shared = []
    blocking = params.gate.model_copy(
        update={"floors": {k: v for k, v in params.gate.floors.items() if k not in shared}}
    )
    misses = gate.check_floors(challenger_metrics, blocking) + gate.check_regressions(
        champ, chall, params.gate, "the champion on the fresh records"
    )
    difference = diff["profit_per_record"] if diff else None
    misses += significance_misses(difference, params.gate, params.monitor.performance.confidence)
    warnings = [_shared_miss(key, challenger_metrics, champ, params.gate) for key in shared]
    gain = chall["business"]["expected_profit"] - champ["business"]["expected_profit"]
    reasons = [] if gain > gate.EPSILON else [
        f"the challenger does not earn more on the fresh records ({gain:+,.0f})"
    ]  # fmt: skip
    return {
        "fresh_records": len(fresh),
        "champion": {"version": champion.version, "metrics": champ},
        "challenger": {"version": challenger.version, "metrics": chall},
        "profit_gain": gain,
        "profit_per_record_difference": difference,
        "significance_required": params.gate.require_significant_improvement,
        "gate_misses": misses,
        "shared_floor_misses": warnings,
        "promoted": not reasons and not misses,
        "why_not": reasons + misses,
    }


def render(result: dict[str, Any], monitoring_md: str, noun: str) -> str:
    c = result["comparison"]
    champ, chall = c["champion"], c["challenger"]
    beyond = " (beyond their noise)" if c.get("significance_required") else ""
    verdict = (
        f"✅ **Promote**: the challenger earns more on the fresh records{beyond} and passes "
        "the gate."
        if c["promoted"]
        else "❌ **Keep the champion**: " + "; ".join(c["why_not"]) + "."
    )
    diff = c["profit_per_record_difference"]
    lines = [
        f"## 🔁 Retraining on production window `{result['window']}`",
        "",
        verdict,
        "",
        *[
            f"> ⚠️ {w}: the world may no longer allow it; revisit `gate.floors`."
            for w in c["shared_floor_misses"]
        ],
        "",
        f"Champion `{champ['version']}` against challenger `{chall['version']}` on the same "
        f"**{c['fresh_records']:,} fresh labelled records** of this window (the new split's "
        "held-out rows from it: the challenger never trained on them, the champion predates "
        "them).",
        "",
        "| metric | champion | challenger | difference |",
        "|---|---:|---:|---:|",
    ]
    for key in SHOWN:
        spec = catalog.BY_KEY[key]
        old, new = spec.value(champ["metrics"]), spec.value(chall["metrics"])
        delta = None if old is None or new is None else new - old
        lines.append(
            f"| {spec.title(noun)} | {spec.show(old)} | {spec.show(new)} "
            f"| {spec.show_delta(delta)} |"
        )
    if diff and diff.low is not None:
        lines += [
            "",
            f"Profit per record, challenger minus champion: {diff.value:+,.3f} "
            f"(interval {diff.low:+,.3f} to {diff.high:+,.3f}, paired bootstrap).",
        ]
    data = result["data"]
    aside = "; ".join(f"{v:,} {k}" for k, v in data["set_aside"].items()) or "none"
    lines += [
        "",
        f"**Training data**: `{data['file']}` (DVC-tracked) adds {data['rows']:,} labelled rows "
        f"(set aside: {aside}); policy `{data['policy']}`"
        + (f", removed {', '.join(data['removed'])}" if data["removed"] else "")
        + ".",
        "",
        "`make report` compares this branch with its base on the whole new test set (the base "
        "model re-scored on it, like-for-like).",
        "",
        "---",
        "",
        monitoring_md,
    ]
    return "\n".join(lines)


# --- the command ------------------------------------------------------------------------------


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="retrain even if monitoring says no")
    p.add_argument("--no-branch", action="store_true", help="leave the changes in the work tree")
    p.add_argument("--outcomes", help="the outcome file drop (default: monitor.outcomes)")


def _summary(root: Path, params: Params, force: bool) -> dict[str, Any]:
    path = root / params.monitor.reports / SUMMARY_JSON
    if not path.is_file():
        raise InputError(f"{path}: not found; run `make monitor` first")
    summary: dict[str, Any] = files.read_json(path)
    if not summary.get("retrain") and not force:
        raise InputError(
            f"{path} says retrain: false; nothing to do (FORCE=1 / --force retrains anyway)"
        )
    if not summary["quality"]["passed"] and not force:
        raise InputError(
            "the window failed the data-quality check (see summary.md): fix the feed first; "
            "a model retrained on broken inputs learns the breakage"
        )
    return summary


def _main(args: argparse.Namespace, params: Params) -> int:
    root = Path.cwd()
    if TABLE.id is None:
        raise InputError("retraining on production windows needs an id column in the schema")
    summary = _summary(root, params, args.force)
    window_id, version = summary["window"]["id"], summary["window"]["model_version"]
    found = window.read_window(root / params.monitor.window)
    champion = reference.find(root, params, version, TABLE).model
    outcomes = window.read_outcomes(Path(args.outcomes or params.monitor.outcomes), TABLE)
    labelled, _ = window.label(
        window.records(found.predictions, version, TABLE, "champion"), outcomes
    )
    data = labelled_rows(labelled, TABLE)
    cfg = params.monitor.retrain
    if len(data.rows) < cfg.min_rows:
        raise InputError(
            f"{len(data.rows):,} valid labelled rows in window {window_id}; "
            f"monitor.retrain.min_rows is {cfg.min_rows:,}: wait for more outcomes"
        )
    branch = None if args.no_branch else f"{cfg.branch_prefix}{window_id}"
    start = start_branch(root, branch) if branch else None
    path, removed = add_window(root, data.rows, window_id, params)
    log.info("added %s labelled rows as %s; reproducing the pipeline", f"{len(data.rows):,}", path)
    _dvc(root, "repro", "--quiet")
    challenger = load_model(params.paths.model, params.paths.model_card)
    test = files.read_table(params.paths.test)
    assert TABLE.id is not None
    fresh = fresh_rows(test, set(data.rows[TABLE.id.name].astype(str)), TABLE)
    if fresh.empty:
        raise InputError("the new test set holds no row of this window: nothing to compare on")
    comparison = compare(champion, challenger, fresh, files.read_json(params.paths.metrics), params)
    result = {
        "window": window_id,
        "branch": branch,
        "started_from": start,
        "data": {
            "file": str(path.relative_to(root)),
            "rows": len(data.rows),
            "set_aside": data.set_aside,
            "policy": cfg.policy,
            "removed": [str(r.relative_to(root)) for r in removed],
        },
        "comparison": comparison,
        "promoted": comparison["promoted"],
    }
    reports = root / params.monitor.reports
    monitoring_md = (
        (reports / SUMMARY_MD).read_text("utf-8")
        if (reports / SUMMARY_MD).is_file()
        else markdown.render(summary)
    )
    md = render(result, monitoring_md, params.project.label_noun)
    files.write_json(reports / RETRAIN_JSON, jsonable(result))
    files.write_text(reports / RETRAIN_MD, md)
    if branch:
        verdict = "promote" if comparison["promoted"] else "keep the champion"
        commit(root, params, f"Retrain on production window {window_id} ({verdict})")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with Path(output).open("a", encoding="utf-8") as fh:
            fh.write(f"promoted={str(comparison['promoted']).lower()}\nbranch={branch or ''}\n")
    sys.stdout.write(md.split("\n---\n", 1)[0] + "\n")
    if branch:
        sys.stdout.write(f"\nbranch {branch} (from {start}): `make report BASE={start}`\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("retrain", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
