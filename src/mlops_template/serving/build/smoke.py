"""`make smoke IMAGE=...`: run the serving image and check it answers like the pipeline's model.

1. `docker run` the image with its port published on a free 127.0.0.1 port.
2. Wait (bounded) until `/readyz` answers 200; fail early, with the container's log, if the
   container exits first (a tampered model stops it).
3. POST the repository's example request to `/predict`: one answer per record, in order, with
   the probabilities the pipeline's model gives in process, the contact decision at the
   model card's threshold, and the model card's version.
4. `/metadata`: the model sha256 must be the one models/model_card.json records.
5. A few bad requests must get a 4xx (never a 5xx), and a valid request afterwards still 200.
6. Stop and remove the container, also on failure.

The release workflow and tests/test_container.py run this same check. Prints a JSON summary
(including the seconds from `docker run` to ready) on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mlops_template.core import cli
from mlops_template.core.errors import InputError
from mlops_template.core.model import LoadedModel, ModelCard, load_model
from mlops_template.core.params import Params
from mlops_template.core.schema import TABLE
from mlops_template.core.table import Kind
from mlops_template.serving import contract

log = logging.getLogger(__name__)

CONTAINER_PORT: Final = 3000
TOLERANCE: Final = 1e-9  # same wheels, same model file: the probabilities must agree exactly


class SmokeError(InputError):
    """The image did not behave; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop_group(proc: subprocess.Popen[Any], grace_s: float = 30.0) -> None:
    """Stop a server started in its own session (`start_new_session=True`) with everything it
    spawned: SIGTERM to the group, SIGKILL after `grace_s` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def request(
    base: str, path: str, body: bytes | None = None, content_type: str = "application/json"
) -> Reply:
    req = urllib.request.Request(f"{base}{path}", data=body, method="POST" if body else "GET")
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Reply(resp.status, resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, err.read())


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


@contextmanager
def running(image: str, port: int) -> Iterator[tuple[str, float]]:
    """Run `image` published on 127.0.0.1:`port`; yield (container name, start time)."""
    name = f"smoke-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    done = docker(
        "run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:{CONTAINER_PORT}",
        image, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SmokeError(f"docker run {image} failed: {done.stderr.strip()}")
    try:
        yield name, started
    except BaseException:
        logs = docker("logs", "--tail", "40", name, check=False)
        log.error("container log (last 40 lines):\n%s%s", logs.stdout, logs.stderr)
        raise
    finally:
        docker("rm", "--force", name, check=False)


def wait_ready(base: str, name: str, started: float, timeout: float) -> float:
    """Poll /readyz until 200; return seconds since `docker run`. Fail if the container exits."""
    while (elapsed := time.monotonic() - started) < timeout:
        try:
            if request(base, "/readyz").status == 200:
                return time.monotonic() - started
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        state = docker("inspect", "--format", "{{.State.Running}}", name, check=False)
        if state.stdout.strip() != "true":
            raise SmokeError(f"container {name} stopped after {elapsed:.1f} s before ready")
        time.sleep(0.2)
    raise SmokeError(f"container {name} not ready within {timeout:.0f} s")


def expected_predictions(
    records: list[dict[str, Any]], params: Params
) -> tuple[list[float], LoadedModel]:
    """The pipeline's model scoring the same records in process (hash-checked load)."""
    model = load_model(params.paths.model, params.paths.model_card)
    frame = contract.records_frame([contract.Record.model_validate(r) for r in records])
    return [float(p) for p in model.probability(frame)], model


def check_predictions(reply: Reply, records: list[dict[str, Any]], params: Params) -> None:
    if reply.status != 200:
        raise SmokeError(f"/predict answered {reply.status}: {reply.body[:300]!r}")
    answers = reply.json()
    if not isinstance(answers, list) or len(answers) != len(records):
        raise SmokeError(f"/predict: expected {len(records)} answers, got {answers!r:.300}")
    expected, model = expected_predictions(records, params)
    key = TABLE.key
    keys = [r[key] for r in records] if TABLE.id else list(range(len(records)))
    for i, (answer, want, proba) in enumerate(zip(answers, keys, expected, strict=True)):
        where = f"/predict answer {i} ({key} {want!r})"
        if answer.get(key) != want:
            raise SmokeError(f"{where}: {key} {answer.get(key)!r}")
        got = answer.get("probability")
        if not isinstance(got, float) or not math.isclose(got, proba, abs_tol=TOLERANCE):
            raise SmokeError(f"{where}: probability {got!r}, in process {proba!r}")
        if answer.get("contact") is not (proba >= model.threshold):
            raise SmokeError(f"{where}: contact {answer.get('contact')!r} at p={proba:.4f}")
        if answer.get("model_version") != model.version:
            raise SmokeError(f"{where}: model_version {answer.get('model_version')!r}")


def check_metadata(reply: Reply, params: Params) -> str:
    card = ModelCard.read(params.paths.model_card)
    if reply.status != 200:
        raise SmokeError(f"/metadata answered {reply.status}: {reply.body[:300]!r}")
    sha = reply.json().get("model", {}).get("sha256")
    if sha != card.sha256:
        raise SmokeError(
            f"/metadata: model sha256 {sha!r}, but {params.paths.model_card} records "
            f"{card.sha256!r}: the image serves another model"
        )
    return str(sha)


def bad_requests(record: dict[str, Any]) -> dict[str, bytes]:
    """Inputs a client may send by mistake; each must get a 4xx."""
    field = contract.REQUIRED_FIELDS[-1]
    missing = {k: v for k, v in record.items() if k != field}

    def body(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    cases = {
        "malformed JSON": b'{"records": [',
        "empty batch": body({"records": []}),
        "unknown field": body({"records": [{**record, "not_a_column": 1}]}),
        f"missing required field {field!r}": body({"records": [missing]}),
        "records not a list": body({"records": record}),
    }
    # A boolean where the schema wants a number or a category (strict types).
    typed = next((c.name for c in TABLE.features if c.kind is not Kind.BOOLEAN), None)
    if typed is not None:
        cases[f"boolean for {typed!r}"] = body({"records": [{**record, typed: True}]})
    return cases


def check_bad_requests(base: str, record: dict[str, Any]) -> dict[str, int]:
    statuses = {}
    for case, payload in bad_requests(record).items():
        reply = request(base, "/predict", payload)
        if not 400 <= reply.status < 500:
            raise SmokeError(f"/predict with {case}: expected a 4xx, got {reply.status}")
        statuses[case] = reply.status
    return statuses


def smoke(image: str, example: Path, params: Params, timeout: float) -> dict[str, Any]:
    payload = example.read_bytes()
    records = json.loads(payload)["records"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(image, port) as (name, started):
        ready = wait_ready(base, name, started, timeout)
        log.info("%s ready after %.1f s", image, ready)
        check_predictions(request(base, "/predict", payload), records, params)
        sha = check_metadata(request(base, "/metadata", b"{}"), params)
        statuses = check_bad_requests(base, records[0])
        check_predictions(request(base, "/predict", payload), records, params)
    log.info("smoke test passed: %d predictions, %d bad requests refused", len(records),
             len(statuses))  # fmt: skip
    return {"image": image, "ready_seconds": round(ready, 2), "model_sha256": sha,
            "records": len(records), "bad_requests": statuses}  # fmt: skip


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, help="image to test, e.g. model-service:dev")
    p.add_argument("--example", type=Path, help="example request (default: the repository's)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ready")


def _main(args: argparse.Namespace, params: Params) -> None:
    example = args.example or Path(params.paths.example)
    sys.stdout.write(json.dumps(smoke(args.image, example, params, args.timeout)) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run("smoke", _args, _main, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
