"""The serving image's build context and labels (`make container`, release workflow).

- `context`: unpack the bento archive that `make bento` exported (model included) into
  `build/container/bento/`, readable by the image's non-root user. The Dockerfile copies it.
- `build-args`: the lineage of that bento as `--build-arg=KEY=VALUE` lines for `docker build`;
  the Dockerfile turns them into OCI labels. They are read from the bento itself (its
  lineage.json, which the service also answers `/metadata` from), so the labels describe the
  model inside the image, whatever the workspace holds now.
- `github-output`: the same, plus the image name and tags, written to `$GITHUB_OUTPUT` for the
  release workflow.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import stat
import sys
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import yaml

from mlops_template.core import catalog, cli
from mlops_template.core import io as files
from mlops_template.core.errors import InputError
from mlops_template.core.lineage import Lineage
from mlops_template.core.params import Params
from mlops_template.core.repo import git_or_none

log = logging.getLogger(__name__)

BENTO_INFO: Final = Path("build/bento.json")  # written by `make bento`: {"tag", "path", ...}
BASE_IMAGE_FILE: Final = Path("docker/base-image/Dockerfile")  # its one FROM line
CONTEXT_BENTO: Final = Path("build/container/bento")
REGISTRY: Final = "ghcr.io"


def read_bento_info(info: Path) -> tuple[str, Path]:
    """The bento's tag and its exported archive, as `make bento` recorded them."""
    if not info.is_file():
        raise InputError(f"{info} not found: run `make bento` first")
    data = files.read_json(info)
    tag = data.get("tag") if isinstance(data, dict) else None
    archive = data.get("archive") if isinstance(data, dict) else None
    if not isinstance(tag, str) or ":" not in tag or not isinstance(archive, str):
        raise InputError(f"{info}: expected 'tag' (name:version) and 'archive'")
    if not Path(archive).is_file():
        raise InputError(f"{info}: bento archive {archive} is missing: run `make bento`")
    return tag, Path(archive)


def unpack_bento(archive: Path, target: Path) -> None:
    """Unpack the exported bento (model included) into `target`, readable by any user.

    Files become world-readable (directories world-executable) and writable only by their
    owner: the export holds 0700 directories, which the image's non-root user could not enter.
    """
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    for path in [target, *target.rglob("*")]:
        if path.is_symlink():
            continue
        mode = 0o755 if path.is_dir() or path.stat().st_mode & stat.S_IXUSR else 0o644
        path.chmod(mode)
    if not (target / "bento.yaml").is_file():
        raise InputError(f"{archive} holds no bento.yaml: not a bento archive")


def bento_lineage(bento: Path) -> Lineage:
    """The lineage recorded next to the (single) model the bento carries."""
    found = sorted(bento.glob("models/*/*/lineage.json"))
    if len(found) != 1:
        raise InputError(
            f"{bento}: expected one models/<name>/<version>/lineage.json, found {len(found)}; "
            "run `make container-context` again"
        )
    return Lineage.model_validate_json(found[0].read_bytes())


def base_image(path: Path = BASE_IMAGE_FILE) -> str:
    """The pinned base image (the FROM of docker/base-image/Dockerfile)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: not found (it names the serving image's base)") from None
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    if len(froms) != 1 or "@sha256:" not in froms[0]:
        raise InputError(f"{path}: expected one FROM line with an image pinned by digest")
    return froms[0]


def bento_version(bento: Path) -> str:
    info = yaml.safe_load((bento / "bento.yaml").read_text(encoding="utf-8"))
    return f"{info['name']}:{info['version']}"


def source_url() -> str:
    """Where the source lives: the GitHub repository in Actions, else an https origin."""
    server, repo = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if server and repo:
        return f"{server}/{repo}"
    origin = git_or_none(Path.cwd(), "remote", "get-url", "origin") or ""
    return origin.removesuffix(".git") if origin.startswith("https://") else ""


def commit_time(commit: str | None) -> datetime | None:
    """Committer time of `commit` (reproducible, unlike the wall clock)."""
    stamp = git_or_none(Path.cwd(), "show", "-s", "--format=%ct", commit) if commit else None
    return datetime.fromtimestamp(int(stamp), tz=UTC) if stamp else None


def build_args(bento: Path, params: Params) -> dict[str, str]:
    """The Dockerfile's lineage ARGs, from the bento in the build context."""
    lineage = bento_lineage(bento)
    tag = bento_version(bento)
    created = commit_time(lineage.git_commit)
    project = params.project
    args = {
        "BASE_IMAGE": os.environ.get("BASE_IMAGE") or base_image(),
        "TITLE": project.image_name,
        "SOURCE": source_url(),
        "REVISION": lineage.git_commit or "",
        "GIT_DIRTY": str(bool(lineage.git_dirty)).lower(),
        "CREATED": created.isoformat().replace("+00:00", "Z") if created else "",
        "VERSION": lineage.model.version,
        "BENTO_TAG": tag,
        "MODEL_VERSION": lineage.model.version,
        "MODEL_SHA256": lineage.model.sha256,
        "DVC_LOCK_SHA256": lineage.dvc_lock_sha256,
        # The headline metrics of the catalog in one label: "ml.roc_auc=0.78,...".
        "METRICS": ",".join(
            f"{key}={metric:.6g}"
            for key in catalog.HEADLINE
            if (metric := catalog.value(lineage.metrics, key)) is not None
        ),
    }
    for key, text in args.items():
        if any(ch.isspace() for ch in text) or "'" in text or '"' in text:
            raise InputError(f"build arg {key}={text!r} contains whitespace or a quote")
    return args


def image_name(repository: str) -> str:
    """GHCR wants lower-case repository names."""
    return f"{REGISTRY}/{repository.lower()}"


def github_output(bento: Path, out: Path, params: Params) -> dict[str, str]:
    """Outputs for the release workflow: build args, image name, tags, SOURCE_DATE_EPOCH.

    `push-tag` (the commit) is pushed first and the image is then handled by digest only;
    the human-facing `promote-tags` (`:model-<version>`, `:latest`) move to that digest only
    after its SBOM, provenance and signature exist (`make promote-tags`).
    """
    repository = os.environ.get("GITHUB_REPOSITORY")
    if not repository:
        raise InputError("GITHUB_REPOSITORY is not set (this runs in GitHub Actions)")
    args = build_args(bento, params)
    image = image_name(repository)
    revision = args["REVISION"] or (git_or_none(Path.cwd(), "rev-parse", "HEAD") or "")
    created = commit_time(revision)
    outputs = {
        "image": image,
        "model-version": args["MODEL_VERSION"],
        "model-sha256": args["MODEL_SHA256"],
        "revision": revision,
        "source-date-epoch": str(int(created.timestamp())) if created else "0",
        "build-args": "\n".join(f"{k}={v}" for k, v in args.items()),
        "push-tag": f"{image}:{revision}",
        "promote-tags": f"{image}:model-{args['MODEL_VERSION']}\n{image}:latest",
    }
    with out.open("a", encoding="utf-8") as fh:
        for key, value in outputs.items():
            if "\n" in value:
                fh.write(f"{key}<<__END_{key.upper()}__\n{value}\n__END_{key.upper()}__\n")
            else:
                fh.write(f"{key}={value}\n")
    return outputs


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action", choices=["context", "build-args", "github-output", "image-name", "base-image"]
    )
    p.add_argument("--bento-info", type=Path, default=BENTO_INFO, help="written by make bento")
    p.add_argument("--bento", type=Path, default=CONTEXT_BENTO, help="unpacked bento dir")


def _main(args: argparse.Namespace, params: Params) -> None:
    if args.action == "image-name":  # the Makefile's default IMAGE
        sys.stdout.write(f"{params.project.image_name}:dev\n")
    elif args.action == "base-image":
        sys.stdout.write(base_image() + "\n")
    elif args.action == "context":
        tag, archive = read_bento_info(args.bento_info)
        unpack_bento(archive, args.bento)
        log.info("unpacked %s (%s) into %s", tag, archive, args.bento)
    elif args.action == "build-args":
        for key, value in build_args(args.bento, params).items():
            sys.stdout.write(f"--build-arg={key}={value}\n")
    else:
        out = os.environ.get("GITHUB_OUTPUT")
        if not out:
            raise InputError("GITHUB_OUTPUT is not set (this runs in GitHub Actions)")
        outputs = github_output(args.bento, Path(out), params)
        log.info("image %s, pushed as %s", outputs["image"], outputs["push-tag"])


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("container", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
