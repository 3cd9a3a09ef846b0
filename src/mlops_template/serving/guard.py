"""What every POST must get past before BentoML parses it (an ASGI middleware).

- **Content-Type**: `application/json`, optionally with `charset=utf-8`, or none at all.
  Anything else is 415, including header bytes that are not ASCII (BentoML's access log would
  crash on them) and any other charset. BentoML would try to parse multipart or form bodies
  and fail with a 500.
- **Size**: at most `max_bytes`, whether or not Content-Length is sent, and without reading
  more than that into memory: 413.
- **Time**: the whole body must arrive within `body_timeout` seconds, or the client gets 408
  and the connection is closed. A client that never finishes its body (slow or malicious)
  holds nothing but its own socket.
- **Concurrency**: at most `max_concurrency` requests are processed at once (429 beyond),
  counted only once their body has arrived, so slow senders cannot starve valid requests.
  (BentoML's own limit counts a request from its first byte, which is why the service leaves
  it unset.) The health and metrics endpoints are GETs and bypass all of this.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

JSON = b"application/json"


def content_type_problem(raw: bytes | None) -> str | None:
    """Why a Content-Type header is not acceptable (None: it is)."""
    if raw is None:
        return None  # clients that send JSON without saying so
    if not raw.isascii():
        shown = raw.decode("ascii", "backslashreplace")
        return f"Content-Type must be application/json, not '{shown}' (not ASCII)"
    media, _, rest = raw.decode("ascii").partition(";")
    if media.strip().lower() != JSON.decode():
        return f"Content-Type must be application/json, not {media.strip()!r}"
    for param in filter(None, (p.strip() for p in rest.split(";"))):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return f"the body must be UTF-8 JSON, not charset {value.strip()!r}"
    return None


async def _reply(status: int, message: str, scope: Scope, send: Send, **headers: str) -> None:
    response = JSONResponse({"error": message}, status_code=status, headers=headers or None)

    async def nothing() -> Any:
        return {"type": "http.disconnect"}

    await response(scope, nothing, send)


class RequestGuard:
    """The middleware: see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        body_timeout: float,
        max_concurrency: int,
        too_large_hint: str = "",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large_hint = too_large_hint
        self.body_timeout = body_timeout
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        problem = content_type_problem(headers.get(b"content-type"))
        if problem:
            await _reply(415, problem, scope, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, send)
            return
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._read(receive)
        except TimeoutError:
            message = f"request body not received within {self.body_timeout:g} s"
            await _reply(408, message, scope, send, connection="close")
            return
        if body is None:  # the client went away
            return
        if len(body) > self.max_bytes:
            await self._too_large(scope, send)
            return
        if self.in_flight >= self.max_concurrency:
            await _reply(429, "too many requests at once; retry shortly", scope, send)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        self.in_flight += 1
        try:
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or as soon as it is larger than allowed: those bytes (the caller
        answers 413). None when the client disconnected."""
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_bytes:
                break
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        message = f"request body larger than {self.max_bytes:,} bytes{self.too_large_hint}"
        await _reply(413, message, scope, send, connection="close")
