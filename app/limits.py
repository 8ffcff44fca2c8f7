"""The request body limits: a pure ASGI middleware that answers 413 or 408 before the app parses anything.

Neither uvicorn nor FastAPI caps a body or the time it takes. A declared Content-Length over the limit
is refused at once, without reading; otherwise the body is read here, counting as it streams (chunked
uploads carry no length), and refused as soon as it passes the limit. It must keep coming: a silence of
TIERED_BODY_GAP_SECONDS, or a body not complete within TIERED_BODY_TIMEOUT_SECONDS, is answered 408 and
the connection closed, which releases what was buffered (a stalled upload would otherwise hold it for
as long as the client keeps the connection open). A body within the limits is handed to the app from
memory; the app would have read it whole anyway to parse the JSON.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, error_content


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, gap_seconds: float, total_seconds: float) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.gap_seconds, self.total_seconds = gap_seconds, total_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(scope, send, 400, "bad_request", "Content-Length is not a number")
            return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_seconds
        chunks, size = [], 0
        try:
            async with asyncio.timeout(min(self.gap_seconds, self.total_seconds)) as clock:
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away before sending it all
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await self._too_large(scope, send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                    clock.reschedule(min(loop.time() + self.gap_seconds, deadline))
        except TimeoutError:
            chunks.clear()
            await self._too_slow(scope, send, loop.time() >= deadline)
            return
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_slow(self, scope: Scope, send: Send, whole: bool) -> None:
        problem = (f"did not arrive within {self.total_seconds:g} s (TIERED_BODY_TIMEOUT_SECONDS)" if whole
                   else f"stopped arriving for {self.gap_seconds:g} s (TIERED_BODY_GAP_SECONDS)")
        await _refuse(scope, send, 408, "request_timeout", f"the request body {problem}; send it at once")

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await _refuse(scope, send, PayloadTooLarge.status, PayloadTooLarge.code,
                      f"the request body is over the {self.max_bytes}-byte limit; send fewer candles or "
                      "items per call, or raise TIERED_MAX_BODY_BYTES")


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent, -1 when it is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    content = error_content(scope["path"], code, message, "body")
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})
