"""RequestGuard on its own, in process: Content-Type, size, the body deadline, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mlops_template.serving.guard import RequestGuard, content_type_problem

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (None, True),
        (b"application/json", True),
        (b"Application/JSON; charset=UTF-8", True),
        (b'application/json; charset="utf-8"', True),
        (b"application/json; charset=latin-1", False),
        (b"application/json; charset=\xff", False),
        (b"\xff\xfe/json", False),
        (b"multipart/form-data; boundary=x", False),
        (b"text/plain", False),
    ],
)
def test_content_type(header: bytes | None, ok: bool) -> None:
    problem = content_type_problem(header)
    assert (problem is None) == ok, problem
    if header is not None and not header.isascii():
        assert problem is not None
        assert "not ASCII" in problem
        assert "\\xff" in problem


class App:
    """A downstream app that records what it got and answers 200."""

    def __init__(self, delay: float = 0.0) -> None:
        self.bodies: list[bytes] = []
        self.delay = delay

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await asyncio.sleep(self.delay)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _scope(headers: dict[bytes, bytes] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/p",
        "headers": list((headers or {}).items()),
    }


async def _call(guard: RequestGuard, scope: dict[str, Any], chunks: list[bytes], *,
                stall: bool = False) -> tuple[int, bytes]:  # fmt: skip
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or stall}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that never sends the rest
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_a_body_that_does_not_arrive_in_time_gets_408_and_reaches_nothing() -> None:
    app = App()
    guard = RequestGuard(app, max_bytes=100, body_timeout=0.2, max_concurrency=4)
    status, body = asyncio.run(_call(guard, _scope(), [b'{"a"'], stall=True))
    assert status == 408
    assert b"not received within 0.2 s" in body
    assert app.bodies == []
    assert guard.in_flight == 0


def test_whole_bodies_are_replayed_and_oversized_ones_refused() -> None:
    app = App()
    guard = RequestGuard(app, max_bytes=10, body_timeout=1, max_concurrency=4, too_large_hint="!")
    assert asyncio.run(_call(guard, _scope(), [b'{"a":', b"1}"]))[0] == 200
    assert app.bodies == [b'{"a":1}']
    status, body = asyncio.run(_call(guard, _scope(), [b"x" * 6, b"y" * 6]))  # chunked, no length
    assert status == 413
    assert b"10 bytes!" in body
    declared = _scope({b"content-length": b"11"})
    assert asyncio.run(_call(guard, declared, [b""]))[0] == 413
    assert app.bodies == [b'{"a":1}']


def test_concurrency_counts_requests_whose_body_has_arrived() -> None:
    async def scenario() -> list[int]:
        app = App(delay=0.3)
        guard = RequestGuard(app, max_bytes=100, body_timeout=5, max_concurrency=2)
        slow = [asyncio.create_task(_call(guard, _scope(), [b"{"], stall=True)) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert guard.in_flight == 0, "bodies still arriving take no slot"
        done = await asyncio.gather(*[_call(guard, _scope(), [b"{}"]) for _ in range(3)])
        for task in slow:
            task.cancel()
        return sorted(status for status, _ in done)

    assert asyncio.run(scenario()) == [200, 200, 429]
