"""HEAD on every GET route: a pure ASGI middleware that serves a HEAD request as the GET it stands for,
with the same status and headers and no body (RFC 9110 §9.3.2), so health checks and monitors that
probe with HEAD get what a GET gets. FastAPI registers GET routes without HEAD; a HEAD on a route
without GET is answered 405 like the GET would be.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
