"""The fan-out of followed symbols' events to subscribers (SSE streams, WebSocket connections), and the
recent events a client resumes from.

    subscriber = hub.subscribe("sse")
    hub.follow(subscriber, "BTCUSDT", after=1733011200000)    # resume after an event id; None: latest
    while (message := await subscriber.next()).kind not in FINAL:
        send(message)
    subscriber.leave()

`publish` never waits, so no subscriber can slow a feed or another subscriber: each has a queue of at
most `queue` messages, and one whose queue is full when a message arrives is dropped: its queue is
emptied and replaced by one `dropped` message saying why, it leaves the hub, and `on_drop(transport,
reason)` counts it. Per symbol the last `buffer` bar events are kept. Following a symbol after an id
queues the kept events after it first (as many as the queue has room for), preceded by a `gap` notice
when some events after that id are no longer kept; following with no id queues the latest bar event,
so a client sees the symbol's current prediction at once. `close` ends every subscriber with `end`.
Everything here runs on the event loop's thread, so a subscription and its backlog are taken
atomically with respect to publishing: nothing is lost or repeated between the two.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec

from app.live.views import Notice

Kind = Literal["bar", "state", "gap", "dropped", "end"]
FINAL: frozenset[Kind] = frozenset({"dropped", "end"})
QUEUE_FULL = "queue_full"
TRANSPORTS = ("sse", "ws")
_ENCODE = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Message:
    kind: Kind
    symbol: str | None
    id: int | None  # a bar's open time (epoch ms); None for other kinds
    body: bytes  # JSON: a SymbolUpdate (bar), a StateView (state), a Notice (gap, dropped, end)


def notice(kind: Literal["gap", "dropped", "end"], reason: str, symbol: str | None = None,
           after: int | None = None, resumed_from: int | None = None) -> Message:
    return Message(kind, symbol, None, _ENCODE(Notice(kind, reason, symbol, after, resumed_from)))


class Subscriber:
    def __init__(self, hub: Hub, transport: str, limit: int) -> None:
        self.hub, self.transport, self.limit = hub, transport, limit
        self.symbols: set[str] = set()
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()
        self._final: Message | None = None

    @property
    def room(self) -> int:
        return self.limit - len(self._queue)

    def offer(self, message: Message) -> bool:
        """Queue a message; False (nothing queued) when the queue is full."""
        if len(self._queue) >= self.limit:
            return False
        self._queue.append(message)
        self._ready.set()
        return True

    def finish(self, final: Message, discard: bool) -> None:
        """The last message this subscriber gets, after what is queued (or instead, with `discard`)."""
        if discard:
            self._queue.clear()
        self._final = final
        self._ready.set()

    async def next(self) -> Message:
        """The next message; after the final one, the final one again."""
        while not self._queue:
            if self._final is not None:
                return self._final
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def leave(self) -> None:
        self.hub.leave(self)


class Hub:
    def __init__(self, symbols: list[str], buffer: int, queue: int,
                 on_drop: Callable[[str, str], None] = lambda transport, reason: None) -> None:
        self.queue, self.on_drop = queue, on_drop
        self._recent: dict[str, deque[Message]] = {name: deque(maxlen=buffer) for name in symbols}
        self._evicted: dict[str, int] = {}  # per symbol, the newest bar id no longer kept
        self._subscribers: set[Subscriber] = set()
        self._closed: Message | None = None

    def subscribe(self, transport: str) -> Subscriber:
        subscriber = Subscriber(self, transport, self.queue)
        if self._closed is not None:
            subscriber.finish(self._closed, discard=True)
        else:
            self._subscribers.add(subscriber)
        return subscriber

    def follow(self, subscriber: Subscriber, symbol: str, after: int | None = None) -> None:
        """Add a symbol to a subscriber, queueing what it missed after `after` (or the latest bar)."""
        if subscriber not in self._subscribers or symbol in subscriber.symbols:
            return
        subscriber.symbols.add(symbol)
        recent = self._recent[symbol]
        if after is None:
            backlog = list(recent)[-1:]
            missed = False
        else:
            backlog = [m for m in recent if m.id is not None and m.id > after]
            missed = self._evicted.get(symbol, -1) > after
        room = subscriber.room - 1  # one for a gap notice
        if len(backlog) > room:
            backlog, missed = backlog[len(backlog) - max(room, 0):], True
        if missed and after is not None:
            kept = backlog[0].id if backlog else None
            subscriber.offer(notice("gap", f"events after {after} are no longer all kept (the service keeps "
                                    f"the last {recent.maxlen} per symbol, a subscriber's queue holds "
                                    f"{self.queue}): resuming from the oldest one kept", symbol, after, kept))
        for message in backlog:
            subscriber.offer(message)

    def unfollow(self, subscriber: Subscriber, symbol: str) -> None:
        subscriber.symbols.discard(symbol)

    def publish(self, message: Message) -> None:
        assert message.symbol is not None, "a symbol's event names its symbol"
        if message.kind == "bar":
            recent = self._recent[message.symbol]
            if len(recent) == recent.maxlen and recent[0].id is not None:
                self._evicted[message.symbol] = recent[0].id
            recent.append(message)
        for subscriber in [s for s in self._subscribers if message.symbol in s.symbols]:
            if not subscriber.offer(message):
                self._drop(subscriber)

    def count(self, symbol: str) -> int:
        return sum(1 for s in self._subscribers if symbol in s.symbols)

    def transports(self) -> list[str]:
        """The transport of every subscriber connected now."""
        return [s.transport for s in self._subscribers]

    def leave(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self, reason: str) -> None:
        """End every subscriber (after what is queued for it) and refuse new ones."""
        self._closed = notice("end", reason)
        for subscriber in self._subscribers:
            subscriber.finish(self._closed, discard=False)
        self._subscribers.clear()

    def _drop(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        reason = (f"{QUEUE_FULL}: {subscriber.limit} events were waiting for this client; it reads slower "
                  "than bars arrive. Reconnect with the last event id to resume from the kept events")
        subscriber.finish(notice("dropped", reason), discard=True)
        self.on_drop(subscriber.transport, QUEUE_FULL)
