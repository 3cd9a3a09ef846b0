"""`make deploy-resolve`: the image a stage assignment deploys, by digest (deploy.yml).

deploy.yml runs when a stage tag is pushed (`model#prod#7`, made by `make assign`). This
module turns that tag into exactly one image:

1. The tag must assign a stage of params.yaml `registry.stages` to dvc.yaml's model artifact
   (an unassignment, `model#prod!#8`, deploys nothing), and must still be that stage's current
   assignment: when a later one exists, that later tag's own run deploys, never this one.
2. The version is the one registered at the tag's commit; that commit is on `registry.branch`.
3. The release workflow pushed the image built from every commit of that branch as
   `<image>:<commit>` (the only tag it pushes; it then signs that digest and moves
   `:model-<model version>` and `:latest` to it). So the image built for the version is
   `<image>:<the version's commit>`. Its digest and labels are read from the registry
   (`docker buildx imagetools inspect`, which deploy.yml's runner has), and the labels must
   name that commit and the sha256 of that commit's dvc.lock: the image holds the model the
   registry names. The model version and sha256 come from the same labels, which the
   Kubernetes manifests repeat. Whether `:model-<model version>` points at the same digest
   is reported (a later commit with a byte-identical model moves that tag).
4. It writes the digest reference, the overlay and the lineage to $GITHUB_OUTPUT, and a
   summary to $GITHUB_STEP_SUMMARY. `make deploy` then verifies the digest's signature
   (release.yml on that branch must have made it) before anything is applied.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.params import Params
from mlops_template.core.repo import LOCK_FILE, git_show
from mlops_template.governance import registry
from mlops_template.serving.build import container, k8s

log = logging.getLogger(__name__)

# The image's OCI labels (Dockerfile) this checks.
REVISION_LABEL: Final = "org.opencontainers.image.revision"
LOCK_LABEL: Final = "mlops.dvc-lock.sha256"
MODEL_VERSION_LABEL: Final = "mlops.model.version"
MODEL_SHA256_LABEL: Final = "mlops.model.sha256"
MODEL_TAG_PREFIX: Final = "model-"  # `:model-<model version>`, as release-meta names it


class DeployError(InputError):
    """The stage tag cannot be deployed; the message says why."""


@dataclass(frozen=True, slots=True)
class Image:
    digest: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class Target:
    """What deploy.yml deploys for one stage tag."""

    tag: str
    stage: str
    version: str
    commit: str
    image: str  # repository, without tag or digest
    digest: str
    model_version: str
    model_sha256: str
    model_tag_digest: str | None  # where :model-<version> points now (None: no such tag)

    @property
    def image_ref(self) -> str:
        return f"{self.image}@{self.digest}"


def parse_stage_tag(tag: str, artifact: str, stages: Sequence[str]) -> str:
    """The stage a pushed tag assigns, or DeployError saying why it deploys nothing."""
    import gto.api
    from gto.constants import Action

    try:
        parsed = gto.api.parse_tag(tag)
    except Exception:  # GTO raises several types for a name that is not one of its tags
        raise DeployError(f"tag {tag!r} is not a GTO tag") from None
    if parsed.get("name") != artifact:
        raise DeployError(f"tag {tag!r} is not about {artifact!r}, dvc.yaml's model artifact")
    if parsed.get("action") is not Action.ASSIGN:
        raise DeployError(f"tag {tag!r} does not assign a stage (it is a {parsed.get('action')})")
    stage = str(parsed["stage"])
    if stage not in stages:
        raise DeployError(f"tag {tag!r} assigns {stage!r}, not one of registry.stages {stages}")
    return stage


def assignment(reg: registry.Registry, tag: str, stage: str) -> registry.Period:
    """The period that `tag` started, which must still be running."""
    current = reg.holder(stage)
    if current is None or current.tag != tag:
        now = f"{current.tag} ({current.version})" if current else "nothing"
        raise DeployError(
            f"{tag} is not {stage}'s current assignment ({now} is): not deploying a superseded "
            "assignment; the run of the current one deploys it"
        )
    return current


def _docker() -> str:
    found = shutil.which("docker")
    if found is None:
        raise DeployError("docker not found: `docker buildx imagetools inspect` reads the image")
    return found


def inspect(ref: str) -> Image | None:
    """The digest and labels of `ref` in its registry (None: it has no such tag)."""
    done = subprocess.run(
        [_docker(), "buildx", "imagetools", "inspect", ref, "--format", "{{json .}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        if "not found" in (done.stderr + done.stdout).lower():
            return None
        raise DeployError(f"docker buildx imagetools inspect {ref} failed: {done.stderr.strip()}")
    data = json.loads(done.stdout)
    digest = str((data.get("manifest") or {}).get("digest") or "")
    config = data.get("image") or {}
    if "config" not in config and len(config) == 1:  # an index: one image per platform
        config = next(iter(config.values()))
    labels = (config.get("config") or {}).get("Labels") or {}
    if not k8s.DIGEST.fullmatch(digest):
        raise DeployError(f"{ref}: the registry answered no sha256 digest ({digest!r})")
    return Image(digest, {str(k): str(v) for k, v in labels.items()})


def check_labels(ref: str, found: Image, commit: str, lock_sha256: str) -> tuple[str, str]:
    """The image says it was built from `commit` and its dvc.lock; its model's version, sha256."""
    labels = found.labels
    if labels.get(REVISION_LABEL) != commit:
        raise DeployError(
            f"{ref} was built from {labels.get(REVISION_LABEL)!r} ({REVISION_LABEL}), not {commit}"
        )
    if labels.get(LOCK_LABEL) != lock_sha256:
        raise DeployError(
            f"{ref}: {LOCK_LABEL} {labels.get(LOCK_LABEL)!r} is not the sha256 of {commit[:12]}'s "
            f"{LOCK_FILE} ({lock_sha256}): the image does not hold that commit's model"
        )
    model = k8s.ModelLineage(
        labels.get(MODEL_VERSION_LABEL, ""), labels.get(MODEL_SHA256_LABEL, ""), commit
    ).check()
    return model.version, model.sha256


def resolve(root: Path, params: Params, tag: str, repository: str) -> Target:
    """The image `tag` deploys (see the module docstring)."""
    reg = registry.read(root, params)
    stage = parse_stage_tag(tag, reg.artifact, params.registry.stages)
    k8s.overlay_dir(root / k8s.K8S_DIR, stage)  # every stage has its overlay
    period = assignment(reg, tag, stage)
    registry.check_on_branch(root, period.commit, params.registry.branch)
    lock = git_show(root, period.commit, LOCK_FILE)
    if lock is None:
        raise DeployError(f"{period.version}'s commit {period.commit[:12]} has no {LOCK_FILE}")
    image = k8s.check_repository(repository)
    by_commit = f"{image}:{period.commit}"
    found = inspect(by_commit)
    if found is None:
        raise DeployError(
            f"no image {by_commit}: the release workflow publishes each commit of "
            f"{params.registry.branch} under that tag; did it run and pass for that commit?"
        )
    version, sha256 = check_labels(by_commit, found, period.commit, files.sha256_bytes(lock))
    by_model = inspect(f"{image}:{MODEL_TAG_PREFIX}{version}")
    return Target(
        tag=tag,
        stage=stage,
        version=period.version,
        commit=period.commit,
        image=image,
        digest=found.digest,
        model_version=version,
        model_sha256=sha256,
        model_tag_digest=by_model.digest if by_model else None,
    )


def outputs(target: Target) -> dict[str, str]:
    """deploy.yml's step outputs: `make deploy` reads them as IMAGE_REF, OVERLAY, ..."""
    return {
        "stage": target.stage,
        "overlay": target.stage,
        "environment": target.stage,
        "version": target.version,
        "commit": target.commit,
        "image-ref": target.image_ref,
        "model-version": target.model_version,
        "model-sha256": target.model_sha256,
        "revision": target.commit,
    }


def summary(target: Target) -> str:
    same = target.model_tag_digest == target.digest
    model_tag = (
        "points at this digest"
        if same
        else (
            f"now points at `{target.model_tag_digest}` (a later build of the same model)"
            if target.model_tag_digest
            else "does not exist"
        )
    )
    rows = [
        ("Stage tag", f"`{target.tag}`"),
        ("Version", f"{target.version} (commit `{target.commit}`)"),
        ("Image", f"`{target.image_ref}`"),
        ("Model", f"`{target.model_version}` (sha256 `{target.model_sha256}`)"),
        (f"`:{MODEL_TAG_PREFIX}{target.model_version}`", model_tag),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"### Deploying {target.version} to {target.stage}\n\n| | |\n|---|---|\n{table}\n"


def _append(path: str | None, text: str) -> None:
    if path:
        with Path(path).open("a", encoding="utf-8") as fh:
            fh.write(text)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tag", required=True, help="the pushed stage tag (GITHUB_REF_NAME)")
    p.add_argument("--image-repo", default="", help="default: ghcr.io/<GITHUB_REPOSITORY>")


def _main(args: argparse.Namespace, params: Params) -> None:
    repository = args.image_repo or os.environ.get("GITHUB_REPOSITORY", "")
    if not repository:
        raise DeployError("GITHUB_REPOSITORY is not set and no --image-repo was given")
    image = args.image_repo or container.image_name(repository)
    target = resolve(Path.cwd(), params, args.tag, image)
    out = outputs(target)
    _append(os.environ.get("GITHUB_OUTPUT"), "".join(f"{k}={v}\n" for k, v in out.items()))
    text = summary(target)
    _append(os.environ.get("GITHUB_STEP_SUMMARY"), text)
    log.info(
        "%s -> %s %s: %s\n%s", target.tag, target.stage, target.version, target.image_ref, text
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("deploy-resolve", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
