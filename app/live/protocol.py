"""WebSocket /ws: follow several symbols over one connection, with a small JSON protocol.

Client → server, one JSON object per text frame (`req_id` optional, echoed in the answer):

    {"op": "subscribe", "symbols": ["BTCUSDT", "ETHUSDT"], "last_event_id": {"BTCUSDT": 1733011200000},
     "req_id": "1"}
    {"op": "unsubscribe", "symbols": ["ETHUSDT"], "req_id": "2"}
    {"op": "ping", "req_id": "3"}

Server → client:

    {"type": "ack", "op": "subscribe", "req_id": "1", "symbols": [...], "subscribed": [...every symbol now]}
    {"type": "pong", "req_id": "3"}
    {"type": "error", "req_id": "1",
     "error": {"code": "invalid_input", "message": "...", "field": "symbols[1]"}}
    {"type": "bar", "symbol": "BTCUSDT", "id": 1733011260000, "data": {...GET /symbols/{symbol}'s body}}
    {"type": "state", "symbol": "BTCUSDT", "data": {"status": "live", "reason": "", "since": "..."}}
    {"type": "gap", "symbol": "BTCUSDT", "data": {...}}     resumed after an id whose successors are gone
    {"type": "dropped", "data": {"reason": ...}}             then close 1008: the client read too slowly
    {"type": "end", "data": {"reason": ...}}                 then close 1001: the service is stopping

Subscribing starts each symbol with its latest bar, or with the kept bars after `last_event_id[symbol]`
(the SSE stream's rule, `hub.py`). A bad message is answered with an error naming the field and leaves
the connection and its subscriptions as they were; subscribing to a symbol already subscribed changes
nothing. One subscriber per connection, so one bounded queue covers all its symbols.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct
from starlette.websockets import WebSocket

from app import wire
from app.errors import ErrorDetail, InvalidInput
from app.live.follower import Live
from app.live.hub import FINAL, Message, Subscriber

MAX_MESSAGE_CHARS = 64 * 1024
MAX_SYMBOLS = 256
CLOSE_DROPPED, CLOSE_GOING_AWAY = 1008, 1001
FINAL_SEND_SECONDS = 2.0  # a dropped client that does not read gets its last message for this long

Text = Annotated[str, Meta(min_length=1, max_length=64)]


class Request(Struct, forbid_unknown_fields=True):
    op: Literal["subscribe", "unsubscribe", "ping"]
    symbols: Annotated[list[Text], Meta(max_length=MAX_SYMBOLS)] = []
    last_event_id: dict[str, Any] | None = None  # checked in `_apply`, to name the symbol in a message
    req_id: Text | None = None


class Ack(Struct, tag_field="type", tag="ack"):
    op: str
    req_id: str | None
    symbols: list[str]
    subscribed: list[str]


class Pong(Struct, tag_field="type", tag="pong"):
    req_id: str | None


class Error(Struct, tag_field="type", tag="error"):
    req_id: str | None
    error: dict[str, str | None]


_DECODE = msgspec.json.Decoder(Request)
_ENCODE = msgspec.json.Encoder().encode


async def serve(websocket: WebSocket, live: Live) -> None:
    await websocket.accept()
    session = Session(websocket, live, live.hub.subscribe("ws"))
    try:
        await session.run()
    finally:
        session.subscriber.leave()


class Session:
    def __init__(self, websocket: WebSocket, live: Live, subscriber: Subscriber) -> None:
        self.websocket, self.live, self.subscriber = websocket, live, subscriber
        self._sending = asyncio.Lock()  # answers and pushed events come from two tasks

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        done, pending = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if any(not t.cancelled() and t.exception() is not None for t in done):
            return  # the connection failed under one of them (the client went away): nothing to close
        if writer in done:
            final = writer.result()
            code = CLOSE_DROPPED if final.kind == "dropped" else CLOSE_GOING_AWAY
            with contextlib.suppress(Exception):  # the client may be gone or stuck; it is closed either way
                async with asyncio.timeout(FINAL_SEND_SECONDS):
                    await self.websocket.close(code, final.kind)

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            await self._send(self._answer(text) if text is not None else _error(
                None, InvalidInput("message: a binary frame; send JSON in text frames", "message")))

    async def _write(self) -> Message:
        """Push the subscriber's messages until its final one, which is returned after being sent."""
        while True:
            message = await self.subscriber.next()
            if message.kind in FINAL:
                with contextlib.suppress(Exception, TimeoutError):
                    async with asyncio.timeout(FINAL_SEND_SECONDS):
                        await self._send(envelope(message))
                return message
            await self._send(envelope(message))

    def _answer(self, text: str) -> bytes:
        if len(text) > MAX_MESSAGE_CHARS:
            return _error(None, InvalidInput(f"message: {len(text)} characters; send at most "
                                             f"{MAX_MESSAGE_CHARS}", "message"))
        try:
            request = wire.decode(_DECODE, text.encode())
        except InvalidInput as e:
            return _error(None, _in_words_of_messages(e))
        try:
            return self._apply(request)
        except InvalidInput as e:
            return _error(request.req_id, e)

    def _apply(self, request: Request) -> bytes:
        if request.op == "ping":
            return _ENCODE(Pong(request.req_id))
        if not request.symbols:
            raise InvalidInput(f"symbols: give at least one symbol to {request.op}", "symbols")
        for i, name in enumerate(request.symbols):
            if name not in self.live.followed:
                followed = ", ".join(self.live.followed) or "none"
                raise InvalidInput(f"symbols[{i}]: {name!r} is not followed; followed: {followed}",
                                   f"symbols[{i}]")
        resume = request.last_event_id or {}
        if request.op == "unsubscribe" and resume:
            raise InvalidInput("last_event_id: only subscribe resumes; remove it", "last_event_id")
        for name, value in resume.items():
            field = f"last_event_id.{name}"
            if name not in request.symbols:
                raise InvalidInput(f"{field}: not among this message's symbols; add it to symbols or "
                                   "remove it", field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{field} is {value!r}; send the id of the last event received, a bar's "
                                   "open time in epoch milliseconds", field)
        hub = self.live.hub
        for name in request.symbols:
            if request.op == "subscribe":
                hub.follow(self.subscriber, name, resume.get(name))
            else:
                hub.unfollow(self.subscriber, name)
        return _ENCODE(Ack(request.op, request.req_id, request.symbols, sorted(self.subscriber.symbols)))

    async def _send(self, data: bytes) -> None:
        async with self._sending:
            await self.websocket.send_text(data.decode())


def envelope(message: Message) -> bytes:
    """A hub message as the client receives it: its type, symbol and id around the JSON body."""
    head = b'{"type":"' + message.kind.encode() + b'"'
    if message.symbol is not None:
        head += b',"symbol":' + _ENCODE(message.symbol)
    if message.id is not None:
        head += b',"id":' + str(message.id).encode()
    return head + b',"data":' + message.body + b"}"


def _in_words_of_messages(e: InvalidInput) -> InvalidInput:
    """The decoder's error as this protocol says it: a message, not a body; the ops it knows."""
    if e.field == "body":
        return InvalidInput(e.message.replace("body", "message", 1), "message")
    if e.field == "op":
        return InvalidInput(f"{e.message}; use subscribe, unsubscribe or ping", "op")
    return e


def _error(req_id: str | None, e: InvalidInput) -> bytes:
    detail = ErrorDetail(code=e.code, message=e.message, field=e.field)
    return _ENCODE(Error(req_id, detail.model_dump()))

