"""The reference: the data, model and metrics the logged model version was built from.

Found through the model's lineage. Every logged prediction names its model version (the first
hex digits of the model file's sha256, `core.model.model_version`), and every run's model card
(`paths.model_card`, DVC-tracked) records it:

1. the workspace: when its model card has the logged version, the reference is the workspace's
   `paths.train` + `paths.test`, the model and `paths.metrics`, after checking that each file
   is the one `dvc.lock` records (a stale file would be someone else's reference);
2. else the last `monitor.lineage_depth` commits that changed `dvc.lock`, newest first: the
   model card each recorded is read from DVC (the local cache, then the remote); at the first
   with the logged version, that commit's train and test sets, model (hash-checked) and
   `metrics.json` are the reference;
3. else monitoring stops with a message naming the version and what to do: comparing a model
   with another model's data would report drift that is not there.

Drift compares the window with train + test (the rows the model was built from); the score
distribution and the expected performance come from the test set, which the model never saw
(its scores on the training rows are a little over-confident).
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from mlops_template.core import io as files
from mlops_template.core import repo
from mlops_template.core.errors import InputError
from mlops_template.core.model import LoadedModel, ModelCard, load_model
from mlops_template.core.params import Business, MonitorPerformance, Params
from mlops_template.core.table import Table
from mlops_template.monitoring.performance import Decisions, Resamples, resample

log = logging.getLogger(__name__)


class ReferenceNotFoundError(InputError):
    """The data the logged model was built from cannot be found; the message says why."""


@dataclass(frozen=True)
class Reference:
    model: LoadedModel
    data: pd.DataFrame  # train + test: what the model was built from
    test: pd.DataFrame  # the held-out rows (scores and expected performance)
    metrics: dict[str, Any]  # that run's metrics.json
    revision: str  # "workspace" or the commit
    how: str  # how it was found, in words

    @functools.cached_property
    def scores(self) -> pd.Series:
        """The model's scores of the held-out rows (computed once)."""
        return pd.Series(self.model.probability(self.test))

    def test_resamples(self, money: Business, cfg: MonitorPerformance) -> Resamples:
        """The held-out rows' bootstrap resamples (the noise of the expected values), drawn
        with a seed of their own and kept: every window of a run compares with the same."""
        cache: dict[tuple[Business, MonitorPerformance], Resamples] = self.__dict__.setdefault(
            "_resamples", {}
        )
        if (money, cfg) not in cache:
            scores = self.scores.to_numpy()
            test = Decisions(self.model.table.target(self.test), scores, self.model.decide(scores))
            cache[(money, cfg)] = resample([test], money, cfg, cfg.seed + 1)
        return cache[(money, cfg)]


def _check_lock(root: Path, rels: list[str]) -> None:
    _, outputs = repo.read_lock(root)
    for rel in rels:
        recorded = outputs.get(rel)
        path = root / rel
        if recorded is None or not path.is_file():
            raise ReferenceNotFoundError(
                f"{rel}: {'missing' if not path.is_file() else 'not recorded in dvc.lock'}; "
                "run `make run` (or `dvc pull`) so the reference is the model's own data"
            )
        if files.file_digest(path, "md5") != recorded:
            raise ReferenceNotFoundError(
                f"{rel} differs from the version dvc.lock records: run `dvc checkout` (or "
                "`make repro`) so the reference is the data the model was built from"
            )


def _workspace(root: Path, params: Params, table: Table) -> Reference:
    p = params.paths
    _check_lock(root, [p.model, p.model_card, p.train, p.test, p.metrics])
    train, test = files.read_table(root / p.train), files.read_table(root / p.test)
    return Reference(
        model=load_model(root / p.model, root / p.model_card, table),
        data=pd.concat([train, test], ignore_index=True),
        test=test,
        metrics=files.read_json(root / p.metrics),
        revision="workspace",
        how="the workspace's model, its data as dvc.lock records it",
    )


def _from_history(root: Path, params: Params, version: str, table: Table) -> Reference | None:
    depth = params.monitor.lineage_depth
    listed = repo.git_or_none(root, "log", f"-n{depth}", "--format=%H", "--", repo.LOCK_FILE)
    if not depth or not listed:
        return None
    from dvc.api import DVCFileSystem  # slow import: only when the workspace is not the model

    p = params.paths
    seen: set[str] = set()
    for sha in listed.split():
        lock = repo.git_show(root, sha, repo.LOCK_FILE)
        card_md5 = repo.lock_outputs(yaml.safe_load(lock) if lock else {}).get(p.model_card)
        if card_md5 is None or card_md5 in seen:
            continue
        seen.add(card_md5)
        fs = DVCFileSystem(str(root), rev=sha)
        try:
            card = ModelCard.model_validate_json(fs.read_bytes(p.model_card))
        except (ValidationError, OSError, ValueError) as exc:
            log.debug("%s of %s: %s", p.model_card, sha[:12], exc)
            continue
        except Exception as exc:  # DVC raises many types when nothing provides a file
            log.debug("%s of %s unavailable: %s", p.model_card, sha[:12], exc)
            continue
        if card.version == version:
            return _at_revision(root, params, sha, fs, table)
    return None


def _at_revision(root: Path, params: Params, sha: str, fs: Any, table: Table) -> Reference:
    p = params.paths
    with tempfile.TemporaryDirectory(prefix="monitor-reference-") as tmp:
        local = {}
        for rel in (p.model, p.model_card, p.train, p.test):
            target = Path(tmp) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.write_bytes(fs.read_bytes(rel))
            except Exception as exc:  # not cached, no remote reachable
                raise ReferenceNotFoundError(
                    f"{rel} of commit {sha[:12]} (the logged model's run) is not in the DVC "
                    f"cache and no remote provided it ({type(exc).__name__}); `dvc pull` it "
                    "or configure the DVC remote"
                ) from None
            local[rel] = target
        model = load_model(local[p.model], local[p.model_card], table)
        train, test = files.read_table(local[p.train]), files.read_table(local[p.test])
    metrics_text = repo.git_show(root, sha, p.metrics)
    if metrics_text is None:
        raise ReferenceNotFoundError(f"commit {sha[:12]} has no {p.metrics}")
    return Reference(
        model=model,
        data=pd.concat([train, test], ignore_index=True),
        test=test,
        metrics=json.loads(metrics_text),
        revision=sha,
        how=f"commit {sha[:12]}: its dvc.lock's model card has this version",
    )


def find(root: Path, params: Params, version: str | None, table: Table) -> Reference:
    """The reference of model `version` (None: the workspace's model)."""
    card_path = root / params.paths.model_card
    current = ModelCard.read(card_path).version if card_path.is_file() else None
    if current is not None and version in (None, current):
        return _workspace(root, params, table)
    if version is None:
        raise ReferenceNotFoundError(f"{card_path}: not found; run `make run` first")
    found = _from_history(root, params, version, table)
    if found is not None:
        log.info("reference of model %s: %s", version, found.how)
        return found
    raise ReferenceNotFoundError(
        f"the logged model version {version} is not the workspace's model "
        f"({current or 'none'}) nor recorded in the last {params.monitor.lineage_depth} commits "
        "that changed dvc.lock: check out the revision that built the deployed model (then "
        "`dvc pull`), or raise monitor.lineage_depth"
    )
