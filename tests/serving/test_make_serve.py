"""`make serve`, as the README says: it builds the bento and answers the example request; with
a tampered model in the store it exits non-zero within 30 s, saying why (issue 10)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from mlops_template.serving.build.smoke import free_port, stop_group
from tests.support import SERVE_TIMEOUT_S, VENV_BIN, ProjectCopy, uv_path

pytestmark = pytest.mark.service

STOP_WITHIN_S = 30  # a server whose model fails its checks exits within this (issue 10)


def _make_serve(
    project: ProjectCopy, port: int, *make_args: str, **env: str
) -> subprocess.Popen[str]:
    """`make serve` in the copy, with this venv's tools, its output on the pipe."""
    full_env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(project.path / "src"),
        **project.env,
        **env,
    }
    full_env.pop("BENTOML_CONTAINERIZED", None)  # as on a laptop: the service sets it itself
    args = ["make", "-o", ".venv/.synced", *make_args, "RUN=env", f"UV={uv_path()}", "serve",
            "HOST=127.0.0.1", f"PORT={port}"]  # fmt: skip
    return subprocess.Popen(
        args, cwd=project.path, env=full_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def test_make_serve_answers_the_example_request(small_project: ProjectCopy) -> None:
    port = free_port()
    proc = _make_serve(small_project, port)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        example = small_project.path / small_project.params.paths.example
        response = httpx.post(
            f"{url}/predict",
            content=example.read_bytes(),
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        answers = response.json()
        assert len(answers) == len(json.loads(example.read_text(encoding="utf-8"))["records"])
        assert {a["model_version"] for a in answers} == {small_project.card.version}
    finally:
        stop_group(proc)


def test_make_serve_of_a_tampered_store_entry_exits_within_30_s_saying_why(
    small_project: ProjectCopy, tmp_path: Path
) -> None:
    """`make bento`, then one byte of the model file in the model store's entry changes (in a
    copy of BENTOML_HOME: the shared copy stays intact); `make serve` without rebuilding the
    bento (`-o bento`) serves from that store, as on a laptop."""
    small_project.make("bento")
    info = json.loads((small_project.path / "build" / "bento.json").read_text(encoding="utf-8"))
    home = tmp_path / "bentoml_home"
    shutil.copytree(small_project.env["BENTOML_HOME"], home, symlinks=True,
                    ignore=shutil.ignore_patterns("envs", "tmp"))  # fmt: skip
    name, version = str(info["model_tag"]).split(":")
    (model_file,) = (home / "models" / name / version).glob("*.joblib")
    payload = bytearray(model_file.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    model_file.write_bytes(bytes(payload))
    port = free_port()
    started = time.monotonic()
    proc = _make_serve(small_project, port, "-o", "bento", BENTOML_HOME=str(home))
    try:
        output, _ = proc.communicate(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        output = proc.stdout.read() if proc.stdout else ""
        raise AssertionError(
            f"`make serve` still running after {STOP_WITHIN_S} s:\n{output[-3000:]}"
        ) from None
    elapsed = time.monotonic() - started
    assert elapsed <= STOP_WITHIN_S, elapsed
    assert proc.returncode != 0, output[-3000:]
    assert "serving.build.bento" not in output, "the bento was rebuilt from the copy's model"
    assert "refusing to serve" in output, output[-3000:]
    assert "does not match" in output, output[-3000:]
    assert small_project.card.sha256 in output, "the message names the recorded hash"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
