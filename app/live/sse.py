"""GET /symbols/{symbol}/events as Server-Sent Events: one event per closed bar, resumable.

    id: 1733011260000                      ← the bar's open time (epoch ms), increasing per symbol
    data: {"symbol": "BTCUSDT", ...}       ← the SymbolUpdate, as GET /symbols/{symbol} answers

    event: state                           ← the feed's state changed (no id: resuming is by bars)
    data: {"status": "degraded", "reason": "...", "since": "..."}

Other named events: `gap` (resumed after an id some of whose successors are no longer kept), `dropped`
(this client read too slowly; the stream ends) and `end` (the service is stopping; the stream ends).
A stream starts with the latest bar's event, or, given the id of the last event a client saw
(`Last-Event-ID`, which browsers send when they reconnect, or `?last_event_id=`), with every kept event
after it. Since ids are bar times, the same id resumes on any worker. FastAPI's EventSourceResponse
frames the events and sends a comment every 15 s on an idle stream, so proxies keep it open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query
from fastapi.sse import ServerSentEvent

from app.deps import LiveDep
from app.errors import InvalidInput
from app.live.hub import FINAL, Message

MAX_ID = 2**63 - 1


async def resume_point(symbol: str, live: LiveDep,
                       last_event_id: Annotated[str | None, Header(description="resume after this event id")]
                       = None,
                       since: Annotated[str | None, Query(alias="last_event_id",
                                                          description="resume after this event id")] = None
                       ) -> tuple[str, int | None]:
    """The followed symbol and the id to resume after; checked before the stream starts, so a bad
    symbol or id is an error answer, not a broken stream."""
    live.symbol(symbol)
    if last_event_id is not None:
        return symbol, _event_id(last_event_id, "Last-Event-ID")
    return symbol, None if since is None else _event_id(since, "last_event_id")


def _event_id(text: str, field: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) > MAX_ID:
        raise InvalidInput(f"{field} is {text[:40]!r}; send the id of the last event received: a bar's open "
                           "time in epoch milliseconds, e.g. 1733011200000", field)
    return int(value)


async def stream(live: LiveDep, symbol: str, after: int | None) -> AsyncIterator[ServerSentEvent]:
    subscriber = live.hub.subscribe("sse")
    live.hub.follow(subscriber, symbol, after)
    try:
        while True:
            message = await subscriber.next()
            yield event(message)
            if message.kind in FINAL:
                return
    finally:
        subscriber.leave()


def event(message: Message) -> ServerSentEvent:
    data = message.body.decode()
    if message.kind == "bar":
        return ServerSentEvent(raw_data=data, id=str(message.id))
    return ServerSentEvent(raw_data=data, event=message.kind)
