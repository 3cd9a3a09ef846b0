"""Experiments: params.yaml variants run through DVC's experiment queue, then ranked.

`make experiments` (`run`): params.yaml `experiments` becomes a list of runs (every
combination of `grid`, then each entry of `extra`, `common` applied to all), each checked
against the params models first. This commit's experiments of the same names are replaced;
the runs are queued (`dvc exp run --queue -n <name> -S key=value`) and the queue is run
(`dvc exp run --run-all`). Each experiment is then a git commit under `refs/exps/` with its
own params.yaml, dvc.lock and metrics; its model and data are in the DVC cache.

`make experiments-table` (`table`): this commit's experiments, read from those refs (the ones
`dvc exp show` lists), ranked by expected profit with ROC AUC and the threshold. Each gets,
against the baseline, the paired-bootstrap interval of the difference of every compared
metric (core/uncertainty.py) and a plain verdict: distinguishable from test-set noise or not.
The baseline is the commit's own model when DVC has it (cache or remote), else the first
experiment. Both models are scored on the same test set: loaded hash-checked, from the DVC
cache. An experiment on another test set (or other business params) gets no interval.

The pull-request report lists the experiments of the branch's commit (`on_commit`).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from threadpoolctl import threadpool_limits

from mlops_template.core import catalog, cli, uncertainty
from mlops_template.core import io as files
from mlops_template.core.errors import InputError, ModelIntegrityError, ParamsError, ProjectError
from mlops_template.core.model import LoadedModel
from mlops_template.core.params import Override, Params, parse_params
from mlops_template.core.repo import LOCK_FILE, PARAMS_FILE, RepoError, git, git_show, lock_outputs
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Table
from mlops_template.review import revision
from mlops_template.review.compare import params_diff

log = logging.getLogger(__name__)

EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38})/([^/]+)$")
NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.=,+-]")
VERDICTS = {
    "better": "🟢 better beyond noise",
    "worse": "🔴 worse beyond noise",
    "noise": "⚪ within noise",
}


class ExperimentError(ProjectError):
    """An experiment cannot be queued, run or read; the message says which and why."""


# --- the runs: grid -> names and overrides (pure) -------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    overrides: dict[str, Override]  # dotted params.yaml key -> value (`dvc exp run -S`)


def _text(value: Override) -> str:
    """A value as YAML writes it (names, and `-S` for numbers, booleans and null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def set_arg(key: str, value: Override) -> str:
    """`key=value` for `dvc exp run -S` (Hydra's override grammar: strings are quoted)."""
    if isinstance(value, str):
        return f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"{key}={_text(value)}"


def run_name(overrides: dict[str, Override]) -> str:
    """`learning_rate=0.05,max_leaf_nodes=15`: the last part of each key (the whole key when
    two keys share their last part), safe as a git ref name."""
    last = [k.split(".")[-1] for k in overrides]
    short = len(set(last)) == len(last)
    parts = [f"{k.split('.')[-1] if short else k}={_text(v)}" for k, v in overrides.items()]
    name = NAME_UNSAFE.sub("_", ",".join(parts)).strip(".") or "baseline"
    return name[:-5] + "_lock" if name.endswith(".lock") else name.replace("..", "._")


def expand(params: Params) -> list[Run]:
    """Every combination of the grid's values, then each extra run; `common` on all."""
    cfg = params.experiments
    keys = list(cfg.grid)
    combos = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*cfg.grid.values())
    ]
    runs = [r for r in combos if r] + [dict(extra) for extra in cfg.extra]
    named = [Run(run_name(r), {**r, **cfg.common}) for r in runs]
    seen: set[str] = set()
    for run in named:
        if run.name in seen:
            raise ParamsError(f"params.yaml experiments: two experiments are both '{run.name}'")
        seen.add(run.name)
    return named


def apply(raw: dict[str, Any], overrides: dict[str, Override], name: str) -> dict[str, Any]:
    """params.yaml data with `overrides` applied (a copy); every key must already exist."""
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node: Any = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise ParamsError(f"experiment '{name}': '{dotted}' is not a key of params.yaml")
        node[leaf] = value
    return out


def check_runs(raw: dict[str, Any], runs: Sequence[Run]) -> None:
    """Each run's params.yaml must load like the real one (before anything is queued)."""
    for run in runs:
        parse_params(apply(raw, run.overrides, run.name), origin=f"experiment '{run.name}'")


# --- reading experiments from their git refs -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Experiment:
    """One experiment (or the baseline commit) as git holds it."""

    name: str
    commit: str
    baseline: str  # the commit it was run on
    created: int  # unix time of its commit
    params: dict[str, Any]
    paths: dict[str, str]
    metrics: dict[str, Any]
    outs: dict[str, str]  # dvc.lock: output path -> md5

    def out_hash(self, key: str) -> str | None:
        path = self.paths.get(key)
        return self.outs.get(path) if path else None

    def metric(self, key: str) -> float | None:
        return catalog.value(self.metrics, key)


def _yaml(root: Path, rev: str, path: str) -> Any:
    data = git_show(root, rev, path)
    return None if data is None else yaml.safe_load(data.decode("utf-8"))


def read_revision(
    root: Path, commit: str, name: str, baseline: str, created: int, defaults: dict[str, str]
) -> Experiment | None:
    """An experiment (or any commit) with its params, metrics and dvc.lock outputs; None when
    it has no metrics (nothing was reproduced there)."""
    raw = _yaml(root, commit, PARAMS_FILE)
    params = raw if isinstance(raw, dict) else {}
    paths = {**defaults, **{k: str(v) for k, v in (params.get("paths") or {}).items()}}
    data = git_show(root, commit, paths["metrics"])
    if data is None:
        return None
    try:
        metrics = json.loads(data)
    except json.JSONDecodeError:
        return None
    outs = lock_outputs(_yaml(root, commit, LOCK_FILE))
    return Experiment(name, commit, baseline, created, params, paths, metrics, outs)


def on_commit(root: Path, baseline: str, defaults: dict[str, str]) -> list[Experiment]:
    """The experiments run on commit `baseline` (full sha), oldest first."""
    listing = git(
        root,
        "for-each-ref",
        "--format=%(refname)%09%(objectname)%09%(creatordate:unix)",
        f"refs/exps/{baseline[:2]}/{baseline[2:]}/",
    )
    found = []
    for line in filter(None, listing.splitlines()):
        ref, commit, created = line.split("\t")
        match = EXP_REF.match(ref)
        if match is None:
            continue
        exp = read_revision(root, commit, match.group(3), baseline, int(created), defaults)
        if exp is not None:
            found.append(exp)
    return sorted(found, key=lambda e: (e.created, e.name))


def changed_params(base: dict[str, Any], exp: dict[str, Any]) -> list[str]:
    """`key=value` for each params.yaml key the experiment changed (the key's last part when
    that is unambiguous, as in the experiment's name)."""
    changes = [c for c in params_diff(base, exp) if not c.key.startswith("experiments.")]
    last = [c.key.split(".")[-1] for c in changes]
    short = len(set(last)) == len(last)
    return [
        f"{c.key.split('.')[-1] if short else c.key}="
        + (_text(c.branch) if not isinstance(c.branch, list | dict) else json.dumps(c.branch))
        for c in changes
    ]


# --- the ranking ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    rank: int
    name: str
    commit: str
    is_baseline: bool
    changed: list[str]  # `key=value` against the baseline
    model_version: str | None
    metrics: dict[str, float | None]  # the compared metrics and the threshold
    paired: uncertainty.PairedBootstrap | None  # against the baseline (None for the baseline)
    note: str  # why there is no interval


@dataclass(frozen=True, slots=True)
class Ranking:
    commit: str  # the commit the experiments were run on
    baseline: str  # name of the baseline row
    baseline_is_commit: bool  # the commit's own model (else: the first experiment)
    rows: list[Row]
    resamples: int
    confidence: float
    seed: int
    n_test: int | None
    seconds: float  # loading, scoring and bootstrapping (the cost of the intervals)
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> Row | None:
        return self.rows[0] if self.rows else None


SHOWN = ("business.expected_profit", "ml.roc_auc", "ml.pr_auc", "ml.brier", "threshold")


def _read_test(root: Path, exp: Experiment) -> pd.DataFrame:
    """The test set an experiment was scored on: the work tree's file when it is that one,
    else the DVC cache (or remote)."""
    path, md5 = root / exp.paths["test"], exp.out_hash("test")
    if path.is_file() and files.file_digest(path, "md5") == md5:
        return files.read_table(path)
    data = revision.dvc_reader(root, exp.commit)(exp.paths["test"])
    if data is None:
        raise revision.ArtifactUnavailableError(f"{exp.paths['test']} of {exp.commit[:12]}")
    with tempfile.TemporaryDirectory(prefix="experiments-test-") as tmp:
        file = Path(tmp, Path(exp.paths["test"]).name)
        file.write_bytes(data)
        return files.read_table(file)


def _model(root: Path, exp: Experiment, table: Table) -> LoadedModel:
    """The experiment's model from the DVC cache (or remote), hash-checked."""
    return revision.model_files(revision.dvc_reader(root, exp.commit), exp.paths).load(table)


def _pairing_problem(base: Experiment, exp: Experiment) -> str:
    if exp.out_hash("test") is None or exp.out_hash("test") != base.out_hash("test"):
        return "another test set than the baseline's (data or split params changed)"
    if exp.params.get("business") != base.params.get("business"):
        return "other business params than the baseline's (profit not comparable)"
    return ""


def pick_baseline(
    own: Experiment | None, exps: Sequence[Experiment], models: dict[str, LoadedModel]
) -> Experiment | None:
    """The commit's own model when DVC has it and an experiment shares its test set; else the
    first experiment whose model DVC has (a grid over the data: they share theirs)."""
    shared = own is not None and any(e.out_hash("test") == own.out_hash("test") for e in exps)
    if own is not None and own.name in models and shared:
        return own
    return next((e for e in exps if e.name in models), None)


def rank(root: Path, commit: str, params: Params, table: Table = TABLE) -> Ranking:
    """The experiments of `commit` and the commit itself, ranked by expected profit, each
    with its intervals against the baseline (the commit's model, else the first experiment
    whose model DVC has)."""
    started = time.perf_counter()
    defaults = params.paths.model_dump()
    exps = on_commit(root, commit, defaults)
    if not exps:
        raise ExperimentError(
            f"no experiments on {commit[:12]}: run `make experiments` first "
            "(or `dvc exp pull <git remote> <name>` to fetch someone's)"
        )
    own = read_revision(root, commit, f"{commit[:7]} (this commit)", commit, 0, defaults)
    everyone = ([own] if own is not None else []) + exps
    models: dict[str, LoadedModel] = {}
    problems: dict[str, str] = {}
    for exp in everyone:
        try:
            models[exp.name] = _model(root, exp, table)
        except (RepoError, ModelIntegrityError, InputError) as exc:
            problems[exp.name] = f"its model is not in the DVC cache or remote ({exc})"
    base = pick_baseline(own, exps, models)
    if base is None:
        raise ExperimentError(
            f"no model of the experiments on {commit[:12]} is in the DVC cache or remote: "
            "`dvc exp pull <git remote> <name>` fetches an experiment with its data"
        )
    notes = []
    if base is not own:
        why = (
            "it has no metrics"
            if own is None
            else problems.get(own.name)
            or "it was scored on another test set than the experiments (they change the data)"
        )
        notes.append(f"the commit's own model is not the baseline: {why}")
    for exp in everyone:
        if exp is not base and exp.name in models:
            problems.setdefault(exp.name, _pairing_problem(base, exp))
    paired: dict[str, uncertainty.PairedBootstrap] = {}
    test: pd.DataFrame | None = None
    try:
        test = _read_test(root, base)
        pool = {n: m for n, m in models.items() if n != base.name and not problems.get(n)}
        baseline = models[base.name]
        with threadpool_limits(limits=params.model.n_threads):  # many threads: 25x slower here
            reference = uncertainty.Scores(baseline.probability(test), baseline.threshold)
            scores = {
                n: uncertainty.Scores(m.probability(test), m.threshold) for n, m in pool.items()
            }
        paired = uncertainty.paired_bootstraps(
            table.target(test), reference, scores, params.business, params.uncertainty
        )
    except (RepoError, ModelIntegrityError, InputError) as exc:
        notes.append(f"no intervals: the baseline's test set cannot be scored ({exc})")
    ordered = sorted(
        everyone, key=lambda e: (-(e.metric("business.expected_profit") or -np.inf), e.created)
    )
    rows = [
        Row(
            rank=i,
            name=e.name,
            commit=e.commit,
            is_baseline=e is base,
            changed=changed_params(base.params, e.params),
            model_version=models[e.name].version if e.name in models else None,
            metrics={k: e.metric(k) for k in SHOWN},
            paired=paired.get(e.name),
            note="" if e is base or e.name in paired else problems.get(e.name) or "not scored",
        )
        for i, e in enumerate(ordered, start=1)
    ]
    return Ranking(
        commit=commit,
        baseline=base.name,
        baseline_is_commit=base is own,
        rows=rows,
        resamples=params.uncertainty.resamples,
        confidence=params.uncertainty.confidence,
        seed=params.uncertainty.seed,
        n_test=None if test is None else len(test),
        seconds=time.perf_counter() - started,
        notes=notes,
    )


# --- rendering ----------------------------------------------------------------------------


def _delta(row: Row, key: str) -> str:
    if row.is_baseline:
        return "baseline"
    if row.paired is None:
        return "—"
    i, spec = row.paired.intervals[key], catalog.BY_KEY[key]
    return f"{spec.show_delta(i.delta)} ({spec.show_delta(i.low)} to {spec.show_delta(i.high)})"


def _verdict(row: Row, key: str) -> str:
    if row.is_baseline:
        return "baseline"
    if row.paired is None:
        return f"no interval: {row.note}"
    return VERDICTS[row.paired.intervals[key].verdict]


def _show(row: Row, key: str) -> str:
    return catalog.BY_KEY[key].show(row.metrics.get(key))


def _cells(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def headline(r: Ranking, primary: str) -> str:
    best = r.best
    if best is None:
        return "No experiments."
    profit = _show(best, "business.expected_profit")
    head = f"**Most profitable: `{best.name}`**, expected profit {profit}"
    if best.is_baseline:
        return head + ": the baseline itself; no experiment earns more."
    if best.paired is None:
        return head + f" (no interval against the baseline: {best.note})."
    return head + f". Against the baseline: {best.paired.intervals[primary].words(r.confidence)}."


def render(r: Ranking, params: Params) -> str:
    primary = params.uncertainty.primary
    share = f"{r.confidence:.0%}"
    lines = [
        f"## Experiments on `{r.commit[:12]}`, ranked by expected profit",
        "",
        headline(r, primary),
        "",
        f"Baseline: **{r.baseline}**"
        + (
            " (the commit's own model)"
            if r.baseline_is_commit
            else " (the commit's own model is not in the DVC cache or remote)"
        )
        + f". Intervals: paired bootstrap of the difference from the baseline, "
        f"{r.resamples:,} resamples of the {r.n_test or 0:,} test rows (seed {r.seed}), both "
        f"models scored on the same resampled rows; {share} intervals.",
        "",
        _cells(
            [
                "#",
                "Experiment",
                "Changed params",
                "Expected profit",
                f"Δ profit ({share} interval)",
                "ROC AUC",
                f"Δ ROC AUC ({share} interval)",
                "Threshold",
                "Profit vs baseline",
            ]
        ),
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in r.rows:
        lines.append(
            _cells(
                [
                    str(row.rank),
                    f"`{row.name}`",
                    ", ".join(row.changed) or "—",
                    _show(row, "business.expected_profit"),
                    _delta(row, "business.expected_profit"),
                    _show(row, "ml.roc_auc"),
                    _delta(row, "ml.roc_auc"),
                    _show(row, "threshold"),
                    _verdict(row, primary),
                ]
            )
        )
    lines += [
        "",
        f"PR AUC and Brier score against the baseline ({share} intervals):",
        "",
        _cells(["Experiment", "PR AUC", "Δ PR AUC", "Verdict", "Brier", "Δ Brier", "Verdict"]),
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for row in r.rows:
        lines.append(
            _cells(
                [
                    f"`{row.name}`",
                    _show(row, "ml.pr_auc"),
                    _delta(row, "ml.pr_auc"),
                    _verdict(row, "ml.pr_auc"),
                    _show(row, "ml.brier"),
                    _delta(row, "ml.brier"),
                    _verdict(row, "ml.brier"),
                ]
            )
        )
    lines += [
        "",
        "How to read it: an interval that excludes 0 means this test set shows the difference "
        "beyond resampling noise; one that includes 0 means another test set of the same size "
        "could rank the two the other way. It says nothing about another training seed, split "
        "or next month's data. `dvc exp show` lists the same experiments; "
        "`dvc exp branch <name> <branch>` makes one a branch for a pull request.",
    ]
    lines += [f"\n> Note: {n}." for n in r.notes]
    return "\n".join(lines) + "\n"


def to_json(r: Ranking) -> dict[str, Any]:
    def interval(i: uncertainty.Interval) -> dict[str, Any]:
        return {"delta": i.delta, "low": i.low, "high": i.high, "verdict": i.verdict}

    return {
        "commit": r.commit,
        "baseline": r.baseline,
        "baseline_is_commit": r.baseline_is_commit,
        "uncertainty": {
            "resamples": r.resamples,
            "confidence": r.confidence,
            "seed": r.seed,
            "n_test": r.n_test,
        },
        "seconds": round(r.seconds, 2),
        "notes": r.notes,
        "experiments": [
            {
                "rank": row.rank,
                "name": row.name,
                "commit": row.commit,
                "baseline": row.is_baseline,
                "changed": row.changed,
                "model_version": row.model_version,
                "metrics": row.metrics,
                "vs_baseline": (
                    {k: interval(i) for k, i in row.paired.intervals.items()}
                    if row.paired
                    else None
                ),
                "note": row.note,
            }
            for row in r.rows
        ],
    }


# --- running the grid through DVC ---------------------------------------------------------


def _dvc(root: Path, *args: str, capture: bool = True) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        check=False,
        text=True,
        capture_output=capture,
    )
    if proc.returncode != 0:
        detail = ((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()
        raise ExperimentError(
            f"`dvc {' '.join(args[:3])} ...` failed (exit {proc.returncode})"
            + (f": {detail[-1]}" if detail else "")
        )
    return proc.stdout or ""


def run(root: Path, params: Params, raw: dict[str, Any]) -> list[str]:
    """Queue every run and run the queue; returns the names. Raises ExperimentError naming
    the experiments that failed."""
    runs = expand(params)
    if not runs:
        raise ParamsError("params.yaml experiments: the grid and extra are both empty")
    check_runs(raw, runs)
    commit = git(root, "rev-parse", "HEAD")
    if git(root, "status", "--porcelain", "--untracked-files=no"):
        log.warning("the work tree has uncommitted changes: every experiment includes them")
    existing = {e.name for e in on_commit(root, commit, params.paths.model_dump())}
    again = [r.name for r in runs if r.name in existing]
    if again:
        log.info("replacing %d experiment(s) of %s: %s", len(again), commit[:12], ", ".join(again))
        _dvc(root, "exp", "remove", *again)
    for r in runs:
        sets = [a for k, v in r.overrides.items() for a in ("-S", set_arg(k, v))]
        _dvc(root, "exp", "run", "--queue", "--name", r.name, *sets)
        log.info("queued %s", r.name)
    log.info(
        "running %d experiment(s), %d at a time (dvc exp run --run-all)",
        len(runs),
        params.experiments.jobs,
    )
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dvc",
            "exp",
            "run",
            "--run-all",
            "--jobs",
            str(params.experiments.jobs),
        ],
        cwd=root,
        check=False,
    )
    done = {e.name for e in on_commit(root, commit, params.paths.model_dump())}
    failed = [r.name for r in runs if r.name not in done]
    if failed:
        raise ExperimentError(
            f"{len(failed)} of {len(runs)} experiment(s) failed: {', '.join(failed)} "
            f"(see `dvc queue logs <name>`)"
        )
    log.info(
        "%d experiment(s) ran in %.0f s on %s: `make experiments-table` ranks them",
        len(runs),
        time.perf_counter() - started,
        commit[:12],
    )
    return [r.name for r in runs]


# --- the command ------------------------------------------------------------------------------


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="queue params.yaml experiments and run them (dvc exp run)")
    table = sub.add_parser("table", help="rank this commit's experiments by expected profit")
    table.add_argument("--rev", default="HEAD", help="the commit they were run on")
    table.add_argument("--out", help="markdown (default: experiments.table)")
    table.add_argument("--json", help="JSON (default: experiments.table_json)")


def _main(args: argparse.Namespace, params: Params) -> int:
    root = Path.cwd()
    if args.command == "run":
        raw = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        run(root, params, raw)
        return 0
    commit = revision.resolve(root, args.rev)
    ranking = rank(root, commit, params)
    markdown = render(ranking, params)
    files.write_text(args.out or params.experiments.table, markdown)
    files.write_json(args.json or params.experiments.table_json, to_json(ranking))
    sys.stdout.write(markdown)
    log.info(
        "ranked %d experiment(s) and the baseline in %.1f s; wrote %s",
        len(ranking.rows) - (1 if ranking.baseline_is_commit else 0),
        ranking.seconds,
        args.out or params.experiments.table,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("experiments", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
