"""The model registry: versions and stages as git tags (GTO), read back as a history.

GTO (Git Tag Ops, DVC's registry) keeps the whole registry in annotated git tags:

- `model@v1.2.0` registers version v1.2.0 at a commit of `registry.branch` (`make register`);
- `model#prod#7` assigns the stage `prod` to the version registered at its commit
  (`make assign`). Every assignment is a new tag (never GTO's movable "simple" form), so each
  one is a new push that deploy.yml deploys, and the history keeps all of them. Rolling back
  is assigning `prod` to an earlier version.

The registry name (`model`) is the one `artifacts:` entry of type model in dvc.yaml, its only
home; `dvc artifacts get . model --stage prod` reads the same tags.

`read` replays the tags into a `Registry`: every version and, per stage, the periods each
version held it, so "what was in production on date D" is a lookup (`Registry.holder`). The
replay follows GTO's own rule (the version whose assignment to a stage is the latest still
standing holds it), so `gto show` and `dvc artifacts get --stage` give the same answer today.

Tags are made by the git CLI (GTO's GitPython backend first): they carry the person's git
identity and config (`tag.gpgSign` signs them) and honour git's environment
(GIT_COMMITTER_DATE, which the tests use to place events at controlled dates).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any, Final

import yaml

from mlops_template.core import cli, gate
from mlops_template.core.errors import InputError
from mlops_template.core.params import Gate, Params
from mlops_template.core.repo import LOCK_FILE, PARAMS_FILE, RepoError, git, git_show, lock_outputs
from mlops_template.governance import contract

log = logging.getLogger(__name__)

DVC_YAML: Final = "dvc.yaml"
ARTIFACT_TYPE: Final = "model"
FIRST_VERSION: Final = "v1.0.0"
# GTO's event names (gto.api.history) for the events that change who holds a stage.
ASSIGNMENT, UNASSIGNMENT = "assignment", "unassignment"
REGISTRATION, DEREGISTRATION, DEPRECATION = "registration", "deregistration", "deprecation"


class RegistryError(InputError):
    """The registry cannot do what was asked; the message says why and what to run."""


# --- the artifact and GTO ------------------------------------------------------------------


def artifact_name(root: Path) -> str:
    """The registry name: the one `artifacts:` entry of type model in dvc.yaml."""
    path = root / DVC_YAML
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise RegistryError(f"{path}: not found (it declares the model artifact)") from None
    models = [
        name
        for name, entry in (spec.get("artifacts") or {}).items()
        if isinstance(entry, dict) and entry.get("type") == ARTIFACT_TYPE
    ]
    if len(models) != 1:
        raise RegistryError(
            f"{path}: expected one `artifacts:` entry with `type: {ARTIFACT_TYPE}`, found "
            f"{models or 'none'}"
        )
    return str(models[0])


def _scm(root: Path) -> Any:
    """GTO's view of the repository, making tags with the git CLI (see the module doc)."""
    from scmrepo.git import Git

    return Git(str(root), backends=["gitpython", "dulwich", "pygit2"])


def _gto_error(exc: Exception) -> RegistryError:
    return RegistryError(f"gto: {exc}")


# --- the history ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One registry tag: a registration, an assignment, ... (GTO's history, oldest first)."""

    timestamp: datetime  # when the tag was made (its tagger date), in UTC
    event: str  # registration, assignment, unassignment, deregistration, deprecation
    version: str | None
    stage: str | None
    commit: str
    tag: str
    author: str
    message: str


@dataclass(frozen=True, slots=True)
class Period:
    """A version holding a stage, from `start` until `end` (None: it still does)."""

    stage: str
    version: str
    commit: str
    start: datetime
    end: datetime | None
    tag: str  # the assignment that started the period
    author: str
    message: str
    ended_by: str | None  # the tag that ended it

    def holds_at(self, when: datetime) -> bool:
        return self.start <= when and (self.end is None or when < self.end)


@dataclass(frozen=True, slots=True)
class Version:
    version: str
    commit: str
    registered_at: datetime
    tag: str
    author: str


def _utc(value: Any) -> datetime:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC)


def events(root: Path, artifact: str) -> list[Event]:
    """Every registry tag of `artifact`, oldest first (ties in GTO's order of priority)."""
    import gto.api
    from gto.exceptions import GTOException

    try:
        raw = gto.api.history(_scm(root), artifact, ascending=True)
    except GTOException as exc:
        raise _gto_error(exc) from None
    return [
        Event(
            timestamp=_utc(e["timestamp"]),
            event=str(e["event"]),
            version=e.get("version"),
            stage=e.get("stage"),
            commit=str(e["commit"]),
            tag=str(e["ref"]),
            author=str(e.get("author") or ""),
            message=str(e.get("message") or "").strip(),
        )
        for e in raw
        if e["event"] != "creation"
    ]


def timeline(history: Sequence[Event], stage: str) -> list[Period]:
    """The periods in which each version held `stage`, oldest first (pure).

    GTO's rule: a version stands in a stage from its latest assignment there until it is
    unassigned from it, deregistered or the artifact deprecated; of the versions standing, the
    one assigned last holds the stage. So re-assigning an earlier version is a rollback, and
    unassigning the current one hands the stage back to the one assigned before it.
    """
    standing: dict[str, tuple[datetime, int, Event]] = {}  # version -> latest assignment
    periods: list[Period] = []
    for order, e in enumerate(history):
        if e.event == ASSIGNMENT and e.stage == stage and e.version:
            standing[e.version] = (e.timestamp, order, e)  # ties: the later tag wins
        elif (e.event == UNASSIGNMENT and e.stage == stage) or e.event == DEREGISTRATION:
            standing.pop(e.version or "", None)
        elif e.event == DEPRECATION:
            standing.clear()
        else:
            continue
        best = max(standing.values(), key=lambda item: item[:2], default=None)
        holder = best[2] if best else None
        current = periods[-1] if periods and periods[-1].end is None else None
        if current is not None and (holder is None or holder.tag != current.tag):
            periods[-1] = _ended(current, e)
        if holder is not None and (current is None or holder.tag != current.tag):
            periods.append(
                Period(
                    stage=stage,
                    version=holder.version or "",
                    commit=holder.commit,
                    start=e.timestamp,
                    end=None,
                    tag=holder.tag,
                    author=holder.author,
                    message=holder.message,
                    ended_by=None,
                )
            )
    return periods


def _ended(period: Period, by: Event) -> Period:
    return Period(**{**asdict(period), "end": by.timestamp, "ended_by": by.tag})


@dataclass(frozen=True, slots=True)
class Registry:
    artifact: str
    branch: str  # registry.branch: versions come from its commits
    stages: tuple[str, ...]
    production: str
    versions: tuple[Version, ...]  # newest (highest semver) first
    history: tuple[Event, ...]  # oldest first
    periods: dict[str, list[Period]]  # per stage, oldest first

    def holder(self, stage: str, when: datetime | None = None) -> Period | None:
        """Who holds `stage` at `when` (now when None)."""
        for period in reversed(self.periods.get(stage, [])):
            if period.end is None if when is None else period.holds_at(when):
                return period
        return None

    def version(self, name: str) -> Version | None:
        return next((v for v in self.versions if v.version == name), None)

    def at_commit(self, commit: str) -> Version | None:
        return next((v for v in self.versions if v.commit == commit), None)

    def stage_periods(self, version: str) -> list[Period]:
        """Every period in which `version` held a stage, oldest first."""
        found = [p for periods in self.periods.values() for p in periods if p.version == version]
        return sorted(found, key=lambda p: p.start)

    def previous_holder(self, stage: str, version: str) -> Period | None:
        """Who held `stage` just before `version` first did (or, if it never did, now)."""
        mine = [p for p in self.periods.get(stage, []) if p.version == version]
        if not mine:
            return self.holder(stage)
        earlier = [p for p in self.periods.get(stage, []) if p.start < mine[0].start]
        others = [p for p in earlier if p.version != version]
        return others[-1] if others else None


def read(root: Path, params: Params) -> Registry:
    """The registry as the repository's tags tell it."""
    artifact = artifact_name(root)
    history = events(root, artifact)
    versions = _versions(history)
    stages = tuple(dict.fromkeys([*params.registry.stages, *(e.stage for e in history if e.stage)]))
    return Registry(
        artifact=artifact,
        branch=params.registry.branch,
        stages=stages,
        production=params.registry.production,
        versions=versions,
        history=tuple(history),
        periods={stage: timeline(history, stage) for stage in stages},
    )


def _versions(history: Sequence[Event]) -> tuple[Version, ...]:
    from gto.versions import SemVer

    registered: dict[str, Version] = {}
    for e in history:
        if e.event == REGISTRATION and e.version:
            registered[e.version] = Version(e.version, e.commit, e.timestamp, e.tag, e.author)
        elif e.event == DEREGISTRATION and e.version:
            registered.pop(e.version, None)
    return tuple(sorted(registered.values(), key=lambda v: SemVer(v.version), reverse=True))


def parse_when(text: str) -> datetime:
    """`2026-11-01` (the end of that day, UTC) or an ISO date and time (UTC unless it says)."""
    try:
        if len(text) == 10:
            return datetime.combine(datetime.fromisoformat(text).date(), time.max, tzinfo=UTC)
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise RegistryError(
            f"AT={text!r} is not a date (2026-11-01) or an ISO date and time (2026-11-01T12:00:00Z)"
        ) from None


# --- registering and assigning ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a commit says about its model, from git alone."""

    commit: str
    schema: dict[str, Any] | None  # the table the validate stage checked (data summary)
    model_md5: str | None  # dvc.lock's hash of the model file
    metrics: dict[str, Any] | None
    gate: Gate | None  # that commit's own gate rules (None: it has no gate block)
    # The request model's bounds and patterns (None: unknown, `contract_note` says why).
    contract: contract.Contract | None
    contract_note: str = ""
    gate_error: str | None = None  # its gate block does not validate (why)


def _yaml_at(root: Path, sha: str, path: str) -> Any:
    data = git_show(root, sha, path)
    return None if data is None else yaml.safe_load(data)


def _json_at(root: Path, sha: str, path: str) -> Any:
    data = git_show(root, sha, path)
    try:
        return None if data is None else json.loads(data)
    except json.JSONDecodeError:
        return None


def snapshot(root: Path, sha: str, params: Params) -> Snapshot:
    raw = _yaml_at(root, sha, PARAMS_FILE) or {}
    paths = {**params.paths.model_dump(), **(raw.get("paths") or {})}
    summary = _json_at(root, sha, paths["data_summary"]) or {}
    rules, problem = None, None
    if raw.get("gate"):
        try:
            rules = Gate.model_validate(raw["gate"])
        except ValueError as exc:
            problem = f"the `gate` block of its {PARAMS_FILE} is not valid: {exc}"
    metrics = _json_at(root, sha, paths["metrics"])
    bounds, note = contract.at_commit(root, sha)
    return Snapshot(
        commit=sha,
        schema=summary.get("schema") if isinstance(summary.get("schema"), dict) else None,
        model_md5=lock_outputs(_yaml_at(root, sha, LOCK_FILE)).get(paths["model"]),
        metrics=metrics if isinstance(metrics, dict) else None,
        gate=rules,
        contract=bounds,
        contract_note=note,
        gate_error=problem,
    )


def bump_kind(previous: Snapshot | None, current: Snapshot) -> tuple[str, str]:
    """Which part of the version a registration bumps, and why (pure).

    major: the model's input contract changed in a way callers may notice (columns, types,
    categories, the label, or a bound or pattern tightened: the service's request model
    follows the schema), or cannot be compared (a side recorded no schema); minor: a new
    model file, or the same one with bounds or patterns only loosened; patch: the same model
    file and contract (code, docs or serving changes only).
    """
    from mlops_template.review.compare import schema_diff

    if previous is None:
        return "first", "the first registered version"
    sides = (("the latest version", previous), ("this commit", current))
    unknown = [
        f"{name} ({snap.commit[:12]}) recorded no input schema in its data summary"
        for name, snap in sides
        if snap.schema is None
    ] + [snap.contract_note for _, snap in sides if snap.contract is None]
    if unknown:
        return "major", "the input contract cannot be compared, so it counts as changed: " + (
            "; ".join(unknown)
        )
    assert previous.contract is not None
    assert current.contract is not None
    breaking, widening = contract.changes(previous.contract, current.contract)
    changes = schema_diff(previous.schema, current.schema) + breaking
    if changes:
        return "major", "the input contract changed: " + "; ".join(changes)
    if previous.model_md5 != current.model_md5:
        return "minor", "a new model file with the same input contract" + (
            f" (loosened: {'; '.join(widening)})" if widening else ""
        )
    if widening:
        return "minor", "the input contract loosened: " + "; ".join(widening)
    return "patch", "the same model file"


def bumped(version: str, kind: str) -> str:
    from gto.versions import SemVer

    if kind == "first":
        return FIRST_VERSION
    flags = {"bump_major": kind == "major", "bump_minor": kind == "minor"}
    return str(SemVer(version).bump(**flags, bump_patch=kind == "patch").version)  # type: ignore[no-untyped-call]


def resolve_commit(root: Path, ref: str) -> str:
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except RepoError:
        raise RegistryError(f"{ref!r} is not a commit of this repository") from None


def check_on_branch(root: Path, sha: str, branch: str) -> None:
    """Versions come from commits on `branch` (the ones the release builds an image of)."""
    for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
        try:
            git(root, "merge-base", "--is-ancestor", sha, ref)
            return
        except RepoError:
            continue
    raise RegistryError(
        f"commit {sha[:12]} is not on {branch} (registry.branch): versions are registered from "
        f"commits on {branch}, the ones the release workflow built an image of"
    )


def check_registrable(snap: Snapshot, params: Params) -> None:
    """The commit has a trained model and its recorded metrics met its own gate (today's when
    it has none, with a warning; none at all when its gate block does not validate)."""
    if snap.gate_error is not None:
        raise RegistryError(
            f"commit {snap.commit[:12]}: {snap.gate_error}; its metrics cannot be checked "
            "against the gate it was made with, so it cannot be registered"
        )
    if snap.model_md5 is None:
        raise RegistryError(
            f"commit {snap.commit[:12]} has no {params.paths.model} in its {LOCK_FILE}: run the "
            "pipeline and commit dvc.lock before registering"
        )
    if snap.metrics is None:
        raise RegistryError(f"commit {snap.commit[:12]} has no {params.paths.metrics}")
    if snap.gate is None:
        log.warning(
            "commit %s has no `gate` block in its %s: its metrics are checked against today's",
            snap.commit[:12],
            PARAMS_FILE,
        )
    misses = gate.check_floors(snap.metrics, snap.gate or params.gate)
    if misses:
        raise RegistryError(
            f"commit {snap.commit[:12]} does not meet its gate, so it cannot be registered:\n"
            + "\n".join(f"  - {m}" for m in misses)
        )


@dataclass(frozen=True, slots=True)
class Registered:
    version: str
    commit: str
    tag: str
    kind: str
    reason: str


def register(
    root: Path,
    params: Params,
    ref: str = "HEAD",
    version: str | None = None,
    message: str | None = None,
) -> Registered:
    """Register the model at commit `ref` as a new semver version (see `bump_kind`)."""
    import gto.api
    from gto.exceptions import GTOException
    from gto.versions import SemVer

    sha = resolve_commit(root, ref)
    check_on_branch(root, sha, params.registry.branch)
    snap = snapshot(root, sha, params)
    check_registrable(snap, params)
    registry = read(root, params)
    existing = registry.at_commit(sha)
    if existing is not None:
        raise RegistryError(f"commit {sha[:12]} is already registered as {existing.version}")
    latest = registry.versions[0] if registry.versions else None
    kind, reason = bump_kind(snapshot(root, latest.commit, params) if latest else None, snap)
    ruled = bumped(latest.version if latest else FIRST_VERSION, kind)
    if version is None:
        version = ruled
    else:
        if not SemVer.is_valid(version):  # type: ignore[no-untyped-call]
            raise RegistryError(f"VERSION={version!r} is not a semver version like v1.2.0")
        if latest is not None and not SemVer(version) > SemVer(latest.version):
            raise RegistryError(f"VERSION={version} is not above the latest, {latest.version}")
        if version != ruled:
            log.warning("registering %s; the bump rule gives %s (%s)", version, ruled, reason)
    text = message or f"Registering artifact {registry.artifact} version {version}: {reason}"
    try:
        event = gto.api.register(_scm(root), registry.artifact, sha, version=version, message=text)
    except GTOException as exc:
        raise _gto_error(exc) from None
    return Registered(version, sha, str(event.tag), kind, reason)


def assign(
    root: Path, params: Params, stage: str, version: str, message: str | None = None
) -> Event:
    """Assign `stage` to a registered `version`: a new tag, even when that version held the
    stage before (a rollback); refused when it holds the stage now."""
    import gto.api
    from gto.exceptions import GTOException

    if stage not in params.registry.stages:
        raise RegistryError(
            f"STAGE={stage!r} is not one of registry.stages {list(params.registry.stages)}"
        )
    registry = read(root, params)
    found = registry.version(version)
    if found is None:
        known = ", ".join(v.version for v in registry.versions) or "none yet: run make register"
        raise RegistryError(f"VERSION={version!r} is not a registered version ({known})")
    holder = registry.holder(stage)
    if holder is not None and holder.version == version:
        raise RegistryError(
            f"{version} already holds {stage} (since {_show_time(holder.start)}, {holder.tag})"
        )
    text = message or f"Assigning stage {stage} to artifact {registry.artifact} version {version}"
    try:
        # force: GTO refuses a version that held the stage before; a rollback is exactly that.
        gto.api.assign(
            _scm(root), registry.artifact, stage, version=version, message=text, force=True
        )
    except GTOException as exc:
        raise _gto_error(exc) from None
    made = next(
        (
            e
            for e in reversed(events(root, registry.artifact))
            if e.event == ASSIGNMENT and e.stage == stage and e.version == version
        ),
        None,
    )
    if made is None:
        raise RegistryError(
            f"gto assigned {stage} to {version}, but no such assignment tag is in the history "
            "now: check `git tag` and `make registry`"
        )
    return made


def push_tag(root: Path, tag: str, remote: str = "origin") -> None:
    git(root, "push", remote, f"refs/tags/{tag}")


# --- showing it ------------------------------------------------------------------------------


def _show_time(stamp: datetime | None) -> str:
    return "now" if stamp is None else stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """An aligned plain-text table."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    line = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return [line[0], "  ".join("-" * w for w in widths), *line[1:]]


def _holder_line(label: str, period: Period | None, stage: str) -> str:
    if period is None:
        return f"{label}: no version held {stage}"
    return (
        f"{label}: {period.version} (commit {period.commit[:12]}), {stage} since "
        f"{_show_time(period.start)} UTC by {period.author or 'unknown'} ({period.tag})"
    )


def _history_cell(period: Period) -> str:
    if period.end is None:
        return f"{period.stage} since {_show_time(period.start)}"
    return f"{period.stage} {_show_time(period.start)} -> {_show_time(period.end)}"


def render(registry: Registry, at: datetime | None = None) -> str:
    """What `make registry` prints: who is in production, every version, the full history."""
    prod = registry.production
    lines = [
        f"Model registry: artifact `{registry.artifact}` (dvc.yaml), stages "
        + ", ".join(registry.stages),
        "",
        _holder_line(f"In production ({prod}) now", registry.holder(prod), prod),
    ]
    if at is not None:
        label = f"In production ({prod}) at {at.strftime('%Y-%m-%d %H:%M:%S')} UTC"
        lines.append(_holder_line(label, registry.holder(prod, at), prod))
    for stage in registry.stages:
        if stage != prod:
            lines.append(_holder_line(f"In {stage} now", registry.holder(stage), stage))
    rows = []
    for v in registry.versions:
        now = [s for s in registry.stages if (h := registry.holder(s)) and h.version == v.version]
        history = "; ".join(_history_cell(p) for p in registry.stage_periods(v.version))
        registered = _show_time(v.registered_at)
        rows.append([v.version, v.commit[:12], registered, ", ".join(now) or "-", history or "-"])
    lines += ["", "Versions (times in UTC)"]
    if rows:
        lines += _columns(["version", "commit", "registered", "holds now", "stage history"], rows)
    else:
        lines.append(f"none registered yet: `make register` on a commit of {registry.branch}")
    events_rows = [
        [
            _show_time(e.timestamp),
            e.event,
            e.version or "-",
            e.stage or "-",
            e.tag,
            e.author or "-",
            e.message.splitlines()[0] if e.message else "",
        ]
        for e in reversed(registry.history)
    ]
    if events_rows:
        header = ["when", "event", "version", "stage", "tag", "by", "message"]
        lines += ["", "History (newest first)", *_columns(header, events_rows)]
    return "\n".join(lines) + "\n"


def _plain(record: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready data (times as ISO text)."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in asdict(record).items()
    }


def to_json(registry: Registry, at: datetime | None = None) -> dict[str, Any]:
    def period(p: Period | None) -> dict[str, Any] | None:
        return None if p is None else _plain(p)

    payload: dict[str, Any] = {
        "artifact": registry.artifact,
        "stages": list(registry.stages),
        "production": registry.production,
        "now": {stage: period(registry.holder(stage)) for stage in registry.stages},
        "versions": [
            {
                **_plain(v),
                "periods": [period(p) for p in registry.stage_periods(v.version)],
            }
            for v in registry.versions
        ],
        "history": [_plain(e) for e in registry.history],
    }
    if at is not None:
        holder = registry.holder(registry.production, at)
        payload["at"] = {"when": at.isoformat(), "production": period(holder)}
    return payload


# --- the command line ------------------------------------------------------------------------


def _args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="every version, its stage history, who is in production")
    show.add_argument("--at", default="", help="also: who was in production then (2026-11-01)")
    show.add_argument("--format", choices=["text", "json"], default="text")
    reg = sub.add_parser("register", help="register a commit of registry.branch as a version")
    reg.add_argument("--ref", default="HEAD")
    reg.add_argument("--version", default="", help="semver (default: the bump rule)")
    reg.add_argument("--message", default="")
    reg.add_argument("--push", action="store_true", help="git push the tag to origin")
    assign_ = sub.add_parser("assign", help="assign a stage to a registered version")
    assign_.add_argument("--stage", required=True)
    assign_.add_argument("--version", required=True)
    assign_.add_argument("--message", default="", help="why (kept in the tag and the history)")
    assign_.add_argument("--push", action="store_true", help="git push the tag: deploy.yml runs")
    sub.add_parser("branch", help="print registry.branch (the Makefile's release signer)")


def _main(args: argparse.Namespace, params: Params) -> None:
    root = Path.cwd()
    if args.action == "branch":
        sys.stdout.write(params.registry.branch + "\n")
        return
    if args.action == "show":
        at = parse_when(args.at) if args.at else None
        registry = read(root, params)
        if args.format == "json":
            sys.stdout.write(json.dumps(to_json(registry, at), indent=2) + "\n")
        else:
            sys.stdout.write(render(registry, at))
        return
    if args.action == "register":
        done = register(root, params, args.ref, args.version or None, args.message or None)
        log.info(
            "registered %s at %s (%s) as tag %s",
            done.version,
            done.commit[:12],
            done.reason,
            done.tag,
        )
        tag = done.tag
    else:
        event = assign(root, params, args.stage, args.version, args.message or None)
        log.info("assigned %s to %s (tag %s)", event.stage, event.version, event.tag)
        tag = event.tag
    then = "publish it" if args.action == "register" else "publish it and deploy it (deploy.yml)"
    if args.push:
        push_tag(root, tag)
        log.info("pushed %s to origin: that is how to %s", tag, then)
    else:
        log.info("to %s: git push origin '%s'", then, tag)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("registry", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
