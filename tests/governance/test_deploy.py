"""`make deploy-resolve`: a pushed stage tag -> the version -> its released image, by digest.

Run in the throwaway registry (conftest.py) with a fake `docker` on PATH that answers
`docker buildx imagetools inspect <ref> --format '{{json .}}'` from a table, as GHCR would for
the images the release workflow pushed (`<image>:<commit>`, `:model-<model version>`).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from mlops_template.core import io as files
from mlops_template.governance import registry
from tests.governance.conftest import Registry
from tests.support import VENV_BIN

pytestmark = pytest.mark.governance

GITHUB_REPOSITORY = "Acme/Churn-Model"
IMAGE = "ghcr.io/acme/churn-model"
MODEL_SHA256 = "ab" * 32
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def answer(commit: str, lock_sha256: str, n: int, *, index: bool = False) -> dict[str, Any]:
    """What imagetools prints for an image built from `commit` (labels as the Dockerfile sets)."""
    labels = {
        "org.opencontainers.image.revision": commit,
        "mlops.dvc-lock.sha256": lock_sha256,
        "mlops.model.version": MODEL_SHA256[:12],
        "mlops.model.sha256": MODEL_SHA256,
    }
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": labels}}
    return {
        "name": "ignored",
        "manifest": {"mediaType": OCI_MANIFEST, "digest": digest(n)},
        "image": {"linux/amd64": config} if index else config,
    }


def fake_docker(bin_dir: Path, images: dict[str, dict[str, Any]]) -> Path:
    """A `docker` that answers imagetools inspect from `images` and logs what it was asked."""
    bin_dir.mkdir(exist_ok=True)
    table, log = bin_dir / "images.json", bin_dir / "docker.log"
    table.write_text(json.dumps(images), encoding="utf-8")
    script = bin_dir / "docker"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "args = sys.argv[1:]\n"
        "assert args[:3] == ['buildx', 'imagetools', 'inspect'], args\n"
        "assert args[4:] == ['--format', '{{json .}}'], args\n"
        f"images = json.load(open({str(table)!r}))\n"
        "if args[3] not in images:\n"
        "    sys.exit(f'ERROR: {args[3]}: not found')\n"
        "print(json.dumps(images[args[3]]))\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def lock_sha256(repo: Registry, commit: str) -> str:
    shown = repo.copy.run("git", "show", f"{commit}:dvc.lock").stdout
    return files.sha256_bytes(shown.encode("utf-8"))


def current_tag(repo: Registry, stage: str) -> str:
    holder = registry.read(repo.path, repo.copy.params).holder(stage)
    assert holder is not None
    return holder.tag


def resolve(repo: Registry, tmp_path: Path, tag: str, images: dict[str, Any]) -> Any:
    bin_dir = tmp_path / "bin"
    log = fake_docker(bin_dir, images)
    out = tmp_path / "github_output"
    done = repo.copy.make(
        "deploy-resolve", check=False, TAG=tag, GITHUB_REPOSITORY=GITHUB_REPOSITORY,
        GITHUB_OUTPUT=str(out), PATH=f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin",
    )  # fmt: skip
    outputs = dict(
        line.split("=", 1) for line in (out.read_text("utf-8").splitlines() if out.exists() else [])
    )
    asked = log.read_text("utf-8").splitlines() if log.exists() else []
    return done, outputs, asked


def released(repo: Registry, name: str, n: int, **kw: Any) -> dict[str, Any]:
    commit = repo.commits[name]
    return {f"{IMAGE}:{commit}": answer(commit, lock_sha256(repo, commit), n, **kw)}


def test_the_current_prod_tag_resolves_to_the_image_of_its_commit_by_digest(
    registry_repo: Registry, tmp_path: Path
) -> None:
    c = registry_repo.commits["C"]
    images = {
        **released(registry_repo, "A", 1),
        **released(registry_repo, "C", 3),
        f"{IMAGE}:model-{MODEL_SHA256[:12]}": answer(c, lock_sha256(registry_repo, c), 3),
    }
    tag = current_tag(registry_repo, "prod")
    done, outputs, asked = resolve(registry_repo, tmp_path, tag, images)
    assert done.returncode == 0, done.stderr
    assert outputs == {
        "stage": "prod",
        "overlay": "prod",
        "environment": "prod",
        "version": "v1.1.1",
        "commit": c,
        "image-ref": f"{IMAGE}@{digest(3)}",
        "model-version": MODEL_SHA256[:12],
        "model-sha256": MODEL_SHA256,
        "revision": c,
    }
    assert asked[0].split()[3] == f"{IMAGE}:{c}", "found by the version's commit"
    assert asked[1].split()[3] == f"{IMAGE}:model-{MODEL_SHA256[:12]}", "compared with :model-"
    assert "points at this digest" in done.stderr, "the summary says :model- is the same image"


def test_staging_and_a_multi_platform_answer(registry_repo: Registry, tmp_path: Path) -> None:
    images = released(registry_repo, "B", 2, index=True)
    tag = current_tag(registry_repo, "staging")
    done, outputs, _ = resolve(registry_repo, tmp_path, tag, images)
    assert done.returncode == 0, done.stderr
    assert (outputs["overlay"], outputs["version"]) == ("staging", "v1.1.0")
    assert outputs["image-ref"] == f"{IMAGE}@{digest(2)}"


def _tags(repo: Registry) -> dict[str, str]:
    reg = registry.read(repo.path, repo.copy.params)
    first_prod = reg.periods["prod"][0].tag
    registration = next(e.tag for e in reg.history if e.event == "registration")
    return {"superseded": first_prod, "registration": registration}


@pytest.mark.parametrize(
    ("which", "images", "message"),
    [
        ("superseded", "all", "is not prod's current assignment"),
        ("registration", "all", "does not assign a stage"),
        ("current", "none", "no image ghcr.io/acme/churn-model:"),
        ("current", "other-commit", "was built from"),
        ("current", "other-lock", "the image does not hold that commit's model"),
    ],
)
def test_what_is_not_deployed(
    registry_repo: Registry, tmp_path: Path, which: str, images: str, message: str
) -> None:
    c = registry_repo.commits["C"]
    table = {
        "all": {**released(registry_repo, "A", 1), **released(registry_repo, "C", 3)},
        "none": {},
        "other-commit": {f"{IMAGE}:{c}": answer("f" * 40, lock_sha256(registry_repo, c), 3)},
        "other-lock": {f"{IMAGE}:{c}": answer(c, "0" * 64, 3)},
    }[images]
    tag = current_tag(registry_repo, "prod") if which == "current" else _tags(registry_repo)[which]
    done, outputs, _ = resolve(registry_repo, tmp_path, tag, table)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert not outputs, "nothing for the deploy step"
