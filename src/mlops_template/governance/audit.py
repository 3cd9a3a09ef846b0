"""`make audit [VERSION=v1.2.0]`: the audit pack of a model version, Markdown and HTML.

A model risk manager reads it without running anything (`pack.py` renders it): identity and
registry history, intended use and limits (the team's file), data lineage and governance,
performance (money first), explanations, the comparison with the previous production model,
the latest monitoring summary and the environment.

Where the facts come from:

- `VERSION=v1.2.0` (a registered version): that version's commit only. Small files (params,
  metrics, data summary, dvc.lock, uv.lock, the team's file) come from git; the model, its
  card, the test set and the plot data come from DVC by that commit's dvc.lock: the local
  cache, else the remote (`revision.committed`). Nothing of the work tree is used, so the
  pack of every version ever registered can be made again from git + the DVC remote alone,
  and every hash in it is that commit's.
- no VERSION: the work tree's model (after `make run`), checked against dvc.lock first; the
  pack that `make bento` puts in the bento.

Params: the version's own params.yaml, read with today's code; keys it did not have yet take
today's values (the pack lists them), keys today's code no longer knows are left out.
Writes `<audit.out_dir>/<version or "work-tree">/audit.{md,html,json}`, all three or none: they
are written into a new directory, which then replaces the pack's directory whole.
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel

from mlops_template.core import audit_pack, cli, explain, gate, lineage
from mlops_template.core import io as files
from mlops_template.core.errors import InputError, ProjectError
from mlops_template.core.model import LoadedModel, ModelCard
from mlops_template.core.params import Params, parse_params
from mlops_template.core.repo import LOCK_FILE, PARAMS_FILE, git
from mlops_template.core.schema import TABLE
from mlops_template.governance import pack as facts
from mlops_template.governance import registry
from mlops_template.monitoring.monitor import SUMMARY_JSON, SUMMARY_MD
from mlops_template.review import compare, revision
from mlops_template.review.revision import Reader, Side
from mlops_template.serving.build import container

log = logging.getLogger(__name__)

WORK_TREE: Final = "work tree"
UV_LOCK: Final = "uv.lock"
PYPROJECT: Final = "pyproject.toml"
CODE_PREFIXES: Final = ("src/", "scripts/")  # dvc.lock deps that are code, not data


class AuditError(InputError):
    """The pack cannot be made; the message says what is missing."""


# --- one version's files -------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The files of the version being audited: `small` from git (or the work tree), `artifact`
    from DVC by that version's dvc.lock (or the work tree)."""

    label: str
    side: Side
    small: Reader
    artifact: Reader

    def text(self, path: str) -> str | None:
        data = self.small(path)
        return None if data is None else data.decode("utf-8")

    def table(self, key: str) -> pd.DataFrame:
        path = self.side.paths[key]
        data = self.artifact(path)
        if data is None:
            raise AuditError(f"{path} of {self.label} is missing")
        if files.table_format(path) == "csv":
            return pd.read_csv(io.BytesIO(data))
        return pd.read_parquet(io.BytesIO(data))

    def model(self) -> LoadedModel:
        model, card = (
            self.artifact(self.side.paths["model"]),
            self.artifact(self.side.paths["model_card"]),
        )
        if model is None or card is None:
            raise AuditError(f"the model of {self.label} is missing")
        return revision.ModelFiles(model, card).load(TABLE)


def open_version(root: Path, params: Params, version: str | None, reg: registry.Registry) -> Source:
    if version is None:
        lineage.collect(root, params)  # the work tree's model, card and metrics are dvc.lock's
        side = replace(revision.workspace(root, params), name=WORK_TREE)
        read = revision.disk_reader(root)
        return Source(WORK_TREE, side, read, read)
    found = reg.version(version)
    if found is None:
        known = ", ".join(v.version for v in reg.versions) or "none"
        raise AuditError(f"VERSION={version!r} is not a registered version (registered: {known})")
    side = revision.committed(root, found.commit, version, params.paths.model_dump())
    return Source(
        version,
        side,
        revision.git_reader(root, found.commit),
        revision.dvc_reader(root, found.commit),
    )


def version_params(today: dict[str, Any], then: dict[str, Any]) -> tuple[Params, list[str]]:
    """The version's params.yaml read with today's code (see the module docstring)."""
    notes: list[str] = []
    merged = _merge(Params, today, then, "", notes)
    try:
        return parse_params(merged, origin=f"{PARAMS_FILE} of the audited version"), notes
    except ProjectError as exc:
        raise AuditError(
            f"the version's {PARAMS_FILE} cannot be read with today's code: {exc}"
        ) from None


def _merge(
    model: type[BaseModel], today: dict[str, Any], then: dict[str, Any], at: str, notes: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        section = info.annotation if isinstance(info.annotation, type) else None
        old, new = then.get(name), today.get(name)
        if name not in then:
            if name in today:
                out[name] = new
                notes.append(f"{at}{name}")
        elif (
            section
            and issubclass(section, BaseModel)
            and isinstance(old, dict)
            and isinstance(new, dict)
        ):
            out[name] = _merge(section, new, old, f"{at}{name}.", notes)
        else:
            out[name] = old
    return out


# --- the sections' facts -----------------------------------------------------------------------


def _commit_facts(root: Path, sha: str) -> tuple[str, str]:
    text = git(root, "show", "-s", "--format=%cI%n%s", sha)
    date, _, subject = text.partition("\n")
    return date, subject


def identity(
    root: Path, src: Source, params: Params, reg: registry.Registry, digest: str | None
) -> facts.Identity:
    side = src.side
    if side.card is None:
        raise AuditError(f"{src.label} has no readable model card ({side.paths['model_card']})")
    registered = reg.at_commit(side.commit) if src.label == WORK_TREE else reg.version(src.label)
    label = registered.version if registered and not side.dirty else src.label
    lock = src.small(LOCK_FILE)
    if lock is None:
        raise AuditError(f"{src.label} has no {LOCK_FILE}")
    date, subject = _commit_facts(root, side.commit)
    return facts.Identity(
        project=params.project.service_name,
        label=label,
        artifact=reg.artifact,
        card=side.card,
        commit=side.commit,
        commit_date=date,
        commit_subject=subject,
        dirty=side.dirty,
        dvc_lock_sha256=files.sha256_bytes(lock),
        registered=registered,
        events=tuple(e for e in reg.history if registered and e.version == registered.version),
        periods=tuple(reg.stage_periods(registered.version)) if registered else (),
        production=reg.production,
        in_production_now=reg.holder(reg.production),
        image_digest=digest,
    )


def hashes(lock: Any) -> tuple[facts.StageHashes, ...]:
    """Every data file dvc.lock records, stage by stage in pipeline order (code left out)."""
    out = []
    for stage, body in ((lock or {}).get("stages") or {}).items():
        deps = tuple(
            (str(d["path"]), str(d["md5"]))
            for d in body.get("deps") or []
            if "md5" in d and not str(d["path"]).startswith(CODE_PREFIXES)
        )
        outs = tuple(
            (str(o["path"]), str(o["md5"]), o.get("size"))
            for o in body.get("outs") or []
            if "md5" in o
        )
        out.append(facts.StageHashes(str(stage), outs, deps))
    return tuple(out)


def _reason(column: dict[str, Any]) -> str:
    if column.get("pii"):
        return "personal data (`pii=True`): never a feature"
    return {
        "id": "identifies a record: the key of every answer, never a feature",
        "metadata": "kept and validated, never a feature",
    }.get(str(column.get("kind")), "not a feature of this model")


def time_span(
    src: Source, schema: dict[str, Any] | None
) -> tuple[tuple[str, str, str] | None, str]:
    """First and last date of the first metadata column that holds dates, if any."""
    candidates = [
        c["name"] for c in (schema or {}).get("columns", []) if c.get("kind") == "metadata"
    ]
    if not candidates:
        return None, (
            "no date column in the schema: the table does not record when each row was "
            "observed (declare one as a `Kind.METADATA` column to report the span)"
        )
    frame = src.table("validated")
    for name in candidates:
        values = frame[name].dropna()
        dates = pd.to_datetime(values.astype(str), errors="coerce", utc=True)
        if len(values) and dates.notna().mean() >= 0.99:
            return (name, str(dates.min().date()), str(dates.max().date())), ""
    return None, f"no metadata column holds dates ({', '.join(candidates)})"


def data_facts(src: Source, params: Params) -> facts.Data:
    side, card = src.side, src.side.card
    assert card is not None
    summary = side.data_summary or {}
    schema = side.schema
    columns = (schema or {}).get("columns", [])
    features = set(card.features)
    span, note = time_span(src, schema)
    lock = yaml.safe_load(src.text(LOCK_FILE) or "")
    return facts.Data(
        source=str((side.params.get("data") or {}).get("source", params.data.source)),
        lineage=hashes(lock),
        rows=summary.get("rows"),
        label_rate=summary.get("label_rate"),
        null_rate=dict(summary.get("null_rate") or {}),
        n_train=card.n_train,
        n_test=side.metrics.get("n_test"),
        n_columns=len(columns) or None,
        n_checks=len(TABLE.checks) if schema == TABLE.describe() else None,
        time_span=span,
        time_note=note,
        features=tuple(card.features),
        pii=tuple(c["name"] for c in columns if c.get("pii")),
        excluded=tuple(
            facts.Excluded(c["name"], str(c.get("kind")), _reason(c))
            for c in columns
            if c["name"] not in features
        ),
    )


def calibration(y: np.ndarray, proba: np.ndarray, bins: int) -> tuple[facts.CalibrationBin, ...]:
    """Equal-width bands of the predicted probability: rows, mean prediction, observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(proba, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            out.append(
                facts.CalibrationBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(mask.sum()),
                    float(proba[mask].mean()),
                    float(y[mask].mean()),
                )
            )
    return tuple(out)


def gaps(metrics: dict[str, Any], params: Params) -> tuple[facts.Gap, ...]:
    out = []
    for column, groups in (metrics.get("segments") or {}).items():
        aucs = {str(k): float(g["roc_auc"]) for k, g in groups.items()}
        if len(aucs) < 2:
            continue
        best, worst = max(aucs, key=aucs.__getitem__), min(aucs, key=aucs.__getitem__)
        limit = params.gate.max_segment_roc_auc_gap.get(column)
        out.append(facts.Gap(column, (best, aucs[best]), (worst, aucs[worst]), limit))
    return tuple(out)


def performance(
    src: Source, params: Params, model: LoadedModel | None, test: pd.DataFrame | None
) -> facts.Performance:
    side, card = src.side, src.side.card
    assert card is not None
    note = ""
    bins: tuple[facts.CalibrationBin, ...] = ()
    if model is not None and test is not None:
        bins = calibration(
            model.table.target(test), model.probability(test), params.evaluate.calibration_bins
        )
    else:
        note = (
            "Calibration needs the model and the test set, which could not be loaded (see below)."
        )
    threshold_cfg = (side.params.get("threshold") or {}).get("cv_folds")
    return facts.Performance(
        metrics=side.metrics,
        noun=params.project.label_noun,
        positive_name=params.project.positive_name,
        negative_name=params.project.negative_name,
        misses=tuple(gate.check_floors(side.metrics, params.gate)),
        gaps=gaps(side.metrics, params),
        confusion=side.plots.confusion if side.plots else None,
        calibration=bins,
        calibration_note=note,
        threshold=card.threshold,
        expected_profit_cv=card.expected_profit_cv,
        cv_folds=int(threshold_cfg) if isinstance(threshold_cfg, int) else None,
        business=dict(side.params.get("business") or params.business.model_dump()),
    )


def representative(proba: np.ndarray, threshold: float, n: int) -> list[tuple[int, str]]:
    """Rows to explain: the highest and lowest scores, the nearest on either side of the
    threshold, then evenly spaced ranks (pure; positions into `proba`)."""
    order = np.argsort(-proba, kind="stable")
    above = [i for i in order if proba[i] >= threshold]
    below = [i for i in order if proba[i] < threshold]
    picks: list[tuple[int, str]] = []
    wanted = [
        (order[0] if len(order) else None, "the highest score"),
        (above[-1] if above else None, "the lowest score still contacted"),
        (below[0] if below else None, "the highest score not contacted"),
        (order[-1] if len(order) else None, "the lowest score"),
    ]
    for rank in np.linspace(0, len(order) - 1, max(n, 2)).round().astype(int):
        wanted.append((order[rank], f"rank {rank + 1:,} of {len(order):,} by score"))
    for index, why in wanted:
        if index is not None and all(index != i for i, _ in picks) and len(picks) < n:
            picks.append((int(index), why))
    return picks


def explanation_facts(
    src: Source, params: Params, model: LoadedModel | None, test: pd.DataFrame | None, why: str
) -> facts.Explanations:
    side = src.side
    importance = tuple(side.plots.importance) if side.plots else ()
    cfg = params.audit
    if model is None or test is None:
        return facts.Explanations(importance, cfg.segment_importance_top_n, (), (), why)
    try:
        rows = cfg.segment_importance_rows
        sample = test.sample(n=rows, random_state=params.model.seed) if len(test) > rows else test
        phi = explain.attribute_frame(model, sample)  # once, for every segment column
        segments = tuple(
            s
            for column in params.evaluate.segments
            if column in sample.columns
            for s in explain.segment_importance(
                model,
                sample,
                column,
                top_n=cfg.segment_importance_top_n,
                min_rows=params.evaluate.min_segment_size,
                contributions=phi,
            )
        )
        picks = representative(model.probability(test), model.threshold, cfg.explanations)
        chosen = test.iloc[[i for i, _ in picks]]
        explained = explain.explain_frame(model, chosen, cfg.explanation_top_k)
    except ProjectError as exc:
        return facts.Explanations(
            importance, cfg.segment_importance_top_n, (), (), f"Explanations unavailable: {exc}"
        )
    decisions = tuple(facts.Decision(w, e) for (_, w), e in zip(picks, explained, strict=True))
    return facts.Explanations(importance, cfg.segment_importance_top_n, segments, decisions, "")


def previous(
    root: Path,
    src: Source,
    params: Params,
    reg: registry.Registry,
    ident: facts.Identity,
    test: Callable[[], pd.DataFrame],
) -> facts.Previous:
    if ident.registered is not None:
        before = reg.previous_holder(reg.production, ident.registered.version)
        when = "just before this version first held it"
    else:
        before = reg.holder(reg.production)
        when = "now (this model is not registered yet)"
    if before is None:
        return facts.Previous(
            None, None, f"No earlier version held {reg.production}: nothing to compare with."
        )
    try:
        found = compare.against(
            root, src.side, test, before.commit, before.version, params, reproduce_if_needed=False
        )
    except ProjectError as exc:
        return facts.Previous(
            before.version, None, f"Comparison with {before.version} unavailable: {exc}"
        )
    return facts.Previous(before.version, found, f"the version that held {reg.production} {when}")


def environment(src: Source, card: ModelCard) -> facts.Environment:
    lock_text = src.text(UV_LOCK)
    packages: list[tuple[str, str]] = []
    total = 0
    if lock_text:
        lock = tomllib.loads(lock_text)
        entries = lock.get("package", [])
        total = len(entries)
        by_name: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_name.setdefault(entry["name"], []).append(entry)
        root = next((e for e in entries if (e.get("source") or {}).get("editable") == "."), None)
        seen: set[str] = set()
        todo = [d["name"] for d in (root or {}).get("dependencies", [])]
        while todo:
            name = todo.pop()
            if name in seen or name not in by_name:
                continue
            seen.add(name)
            for entry in by_name[name]:
                todo += [d["name"] for d in entry.get("dependencies", [])]
        packages = sorted((n, " / ".join(str(e.get("version")) for e in by_name[n])) for n in seen)
    pyproject = tomllib.loads(src.text(PYPROJECT) or "")
    python = str((pyproject.get("project") or {}).get("requires-python", "—"))
    dockerfile = src.small(str(container.BASE_IMAGE_FILE))
    base = "—"
    if dockerfile is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "Dockerfile"
            path.write_bytes(dockerfile)
            try:
                base = container.base_image(path)
            except InputError as exc:
                base = str(exc)
    return facts.Environment(
        python=f"{python} (pyproject.toml requires-python)",
        base_image=base,
        sklearn=card.sklearn_version,
        packages=tuple(packages),
        locked_total=total,
        uv_lock_sha256=files.sha256_bytes(lock_text.encode("utf-8")) if lock_text else None,
    )


def monitoring(root: Path, params: Params) -> tuple[dict[str, Any] | None, str | None]:
    """The monitoring job's latest summary (`<monitor.reports>/summary.json`, summary.md)."""
    reports = root / params.monitor.reports
    if not (reports / SUMMARY_JSON).is_file():
        return None, None
    data = files.read_json(reports / SUMMARY_JSON)
    md = reports / SUMMARY_MD
    text = md.read_text(encoding="utf-8") if md.is_file() else None
    return (data if isinstance(data, dict) else {"summary": data}), text


# --- the pack ----------------------------------------------------------------------------------


def build(root: Path, params: Params, version: str | None, digest: str | None) -> facts.Pack:
    reg = registry.read(root, params)
    src = open_version(root, params, version, reg)
    today = (
        yaml.safe_load((root / PARAMS_FILE).read_text(encoding="utf-8"))
        if (root / PARAMS_FILE).is_file()
        else {}
    )
    own, missing = version_params(today or params.model_dump(mode="json"), src.side.params)
    ident = identity(root, src, own, reg, digest)
    notes = (
        [f"{ident.label}'s params.yaml has no {', '.join(missing)}: today's values are used there."]
        if missing
        else []
    )
    model: LoadedModel | None = None
    test: pd.DataFrame | None = None
    why = ""
    try:
        test = src.table("test")
        model = src.model()
    except ProjectError as exc:
        why = f"The model or the test set of {ident.label} could not be loaded: {exc}"
        log.warning("%s", why)
    team_path = own.audit.intended_use
    team_text = src.text(team_path)
    if team_text is None:
        notes.append(
            f"`{team_path}` did not exist at {ident.commit[:12]}: the team's sections are missing."
        )

    watched, watched_text = monitoring(root, own)

    def test_set() -> pd.DataFrame:
        return test if test is not None else src.table("test")

    return facts.Pack(
        identity=ident,
        team=facts.team_sections(team_text or ""),
        team_source=f"`{team_path}` "
        + ("in the work tree" if src.label == WORK_TREE else f"at commit `{ident.commit[:12]}`"),
        data=data_facts(src, own),
        performance=performance(src, own, model, test),
        explanations=explanation_facts(src, own, model, test, why),
        previous=previous(root, src, own, reg, ident, test_set),
        monitoring=watched,
        monitoring_text=watched_text,
        monitoring_source=f"{own.monitor.reports}/{SUMMARY_JSON}",
        environment=environment(src, ident.card),
        notes=tuple(notes),
    )


def check_out_dir(directory: Path) -> None:
    """The pack replaces `directory` whole: it may be absent, empty or a previous pack."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise AuditError(f"{directory}: exists and is not a directory")
    others = sorted(p.name for p in directory.iterdir() if p.name not in audit_pack.FILES)
    if others:
        raise AuditError(
            f"{directory}: holds {', '.join(others[:5])}, which an audit pack does not; the pack "
            "replaces its directory whole, so give an empty or new one (--out)"
        )


def write(pack: facts.Pack, directory: Path) -> list[Path]:
    """The pack's three files, all or none (see the module docstring)."""
    check_out_dir(directory)
    parts = facts.blocks(pack)
    title = f"Audit pack: {pack.identity.project} {pack.identity.label}"
    texts = {
        audit_pack.MARKDOWN: facts.to_markdown(parts),
        audit_pack.HTML: facts.to_html(parts, title),
        audit_pack.FACTS: files.dumps_json(facts.to_json(pack)),
    }
    with files.atomic_directory(directory) as tmp:
        for name, text in texts.items():
            files.write_text(tmp / name, text)
    return [directory / name for name in texts]


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", default=None, help="a registered version (default: the work tree)")
    p.add_argument("--image-digest", default=None, help="sha256:... of the image, when known")
    p.add_argument("--out", type=Path, default=None, help="default: <audit.out_dir>/<version>")


def _main(args: argparse.Namespace, params: Params) -> None:
    root = Path.cwd()
    pack = build(root, params, args.version, args.image_digest)
    directory = args.out or audit_pack.directory(params.audit.out_dir, args.version)
    written = write(pack, directory)
    log.info(
        "audit pack of %s (model %s): %s",
        pack.identity.label,
        pack.identity.card.version,
        ", ".join(str(p) for p in written),
    )


def main(argv: list[str] | None = None) -> int:
    return cli.run("audit", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
