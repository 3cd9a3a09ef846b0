"""A real S3-protocol DVC remote: moto's S3 server, in this process, on a loopback port.

The remote is set up with the `dvc remote ...` commands of the README's "DVC remote and
caching" section, run as written except for the endpoint and the keys (the server's, dummy
ones). Then the pipeline is reproduced in a copy of the project (small params), pushed to the
bucket, cloned with git into a fresh directory whose keys come from the environment, and pulled:
every output must be byte-identical and `dvc status` clean. An object altered in the bucket
(same size, other bytes) must make `dvc pull` fail (`verify true`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from mlops_template.core import io as storage
from mlops_template.core.repo import lock_outputs
from tests.support import ROOT, ProjectCopy, fast_changes

pytestmark = pytest.mark.pipeline

N_ROWS = 2_000
KEY_ID, SECRET = "testing", "testing"  # moto accepts any keys; these are not credentials
REGION = "us-east-1"
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")  # fmt: skip
REPLACED = {"endpointurl", "access_key_id", "secret_access_key"}  # README placeholders


def readme_remote_commands() -> list[list[str]]:
    """The `dvc remote` lines of the console blocks in the README's DVC remote section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## DVC remote and caching\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```console\n(.*?)^```$", section, re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith("dvc remote")]


def for_the_test_server(argv: list[str], endpoint: str) -> list[str]:
    """The README's command with its placeholder endpoint / keys replaced; nothing else."""
    if argv[:3] != ["dvc", "remote", "modify"]:
        return argv
    option = argv[-2]
    if option not in REPLACED:
        return argv
    value = {"endpointurl": endpoint, "access_key_id": KEY_ID, "secret_access_key": SECRET}
    return [*argv[:-1], value[option]]


def bucket_of(commands: list[list[str]]) -> tuple[str, str]:
    """The bucket and key prefix of the `dvc remote add` URL (s3://bucket/prefix)."""
    add = next(c for c in commands if c[:3] == ["dvc", "remote", "add"])
    url = add[-1]
    assert url.startswith("s3://"), f"the README's remote is {url}, not an S3 URL"
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def digests(repo: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of every file under each path (file or directory), by relative path."""
    out = {}
    for rel in paths:
        target = repo / rel
        found = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        out.update({str(f.relative_to(repo)): storage.sha256_file(f) for f in found})
    return out


@dataclass
class Remote:
    copy: ProjectCopy
    client: Any  # boto3's S3 client
    bucket: str
    prefix: str
    outputs: dict[str, str]  # path -> md5 of every pipeline output (dvc.lock)
    keys_env: dict[str, str]  # what a clone's environment provides instead of config.local

    def clone(self, target: Path) -> ProjectCopy:
        self.copy.run("git", "clone", "-q", str(self.copy.path), str(target))
        return ProjectCopy(target, {**self.copy.env, **self.keys_env})

    def object_key(self, md5: str) -> str:
        return f"{self.prefix}/files/md5/{md5[:2]}/{md5[2:]}"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("s3")
    commands = readme_remote_commands()
    bucket, prefix = bucket_of(commands)
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name=REGION, aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )  # fmt: skip
    client.create_bucket(Bucket=bucket)
    # No keys from this machine: the copy authenticates with what the README's commands set.
    env = {
        "AWS_CONFIG_FILE": str(base / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(base / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for credentials
        "AWS_DEFAULT_REGION": REGION,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name in AWS_VARIABLES:
            mp.delenv(name, raising=False)
        copy = ProjectCopy.create(base / "repo", fast_changes(N_ROWS), **env)
        for argv in commands:
            copy.dvc(*for_the_test_server(argv, s3_endpoint)[1:])
        copy.commit("copy of the template, S3 remote")
        copy.reproduce()
        lock = yaml.safe_load((copy.path / "dvc.lock").read_text(encoding="utf-8"))
        keys = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
        yield Remote(copy, client, bucket, prefix, lock_outputs(lock), keys)


def test_the_readme_configures_an_s3_remote_with_verify_and_local_keys(remote: Remote) -> None:
    commands = readme_remote_commands()
    assert commands[0][:4] == ["dvc", "remote", "add", "-d"], "the first command adds a default"
    name = commands[0][4]
    assert ["dvc", "remote", "modify", name, "verify", "true"] in commands
    options = {c[-2] for c in commands if c[:3] == ["dvc", "remote", "modify"]}
    assert options >= REPLACED, f"the README shows {sorted(options)}"
    for command in commands:
        if command[-2] in {"access_key_id", "secret_access_key"}:
            assert "--local" in command, f"{command}: keys belong in .dvc/config.local"
    shared = (remote.copy.path / ".dvc" / "config").read_text(encoding="utf-8")
    assert "endpointurl" in shared
    assert "access_key_id" not in shared
    assert "secret_access_key" not in shared
    ignored = remote.copy.run("git", "check-ignore", ".dvc/config.local", check=False)
    assert ignored.returncode == 0, ".dvc/config.local must not be committed"


def test_push_then_pull_into_a_fresh_clone_restores_identical_outputs(
    remote: Remote, tmp_path: Path
) -> None:
    pushed = remote.copy.dvc("push")
    assert "pushed" in pushed.stdout, pushed.stdout
    listed = remote.client.list_objects_v2(Bucket=remote.bucket, Prefix=f"{remote.prefix}/")
    assert listed.get("KeyCount", 0) > 0, "nothing landed in the bucket"
    assert remote.copy.dvc("status", "--cloud").stdout.strip().endswith("are in sync.")

    clone = remote.clone(tmp_path / "clone")
    assert not (clone.path / ".dvc" / "config.local").exists()
    paths = sorted(remote.outputs)
    from_dvc = [p for p in paths if not (clone.path / p).exists()]
    model = remote.copy.params.paths.model
    assert model in from_dvc, "the model must come from the bucket, not from git"
    clone.dvc("pull")
    assert digests(clone.path, paths) == digests(remote.copy.path, paths)
    status = clone.dvc("status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    assert clone.run("git", "status", "--porcelain").stdout == "", "pull changed tracked files"


def test_a_tampered_object_in_the_bucket_makes_pull_fail(remote: Remote, tmp_path: Path) -> None:
    remote.copy.dvc("push")
    model = remote.copy.params.paths.model
    key = remote.object_key(remote.outputs[model])
    original = remote.client.get_object(Bucket=remote.bucket, Key=key)["Body"].read()
    tampered = bytes(b ^ 0xFF for b in original)  # same size, every byte different
    remote.client.put_object(Bucket=remote.bucket, Key=key, Body=tampered)
    try:
        clone = remote.clone(tmp_path / "clone")
        result = clone.dvc("pull", check=False)
        assert result.returncode != 0, f"dvc pull accepted a tampered {model}:\n{result.stdout}"
        pulled = clone.path / model
        assert not pulled.exists() or pulled.read_bytes() != tampered, "tampered bytes checked out"
    finally:
        remote.client.put_object(Bucket=remote.bucket, Key=key, Body=original)
