"""The bounded queue of events between feeds and their consumer.

`put` never waits: when the consumer is `size` events behind, the oldest event is dropped and counted
in `dropped`, so a slow consumer can never stall a live feed (the exchange does not wait either). A
source that can wait, a file replay, awaits `room()` before each bar instead and loses nothing.
Several feeds may share one outbox, so one consumer loop serves every symbol. A feed closes the outbox
it made when it ends; a shared one is closed by whoever made it. Iterating ends once the outbox is
closed and everything in it has been taken.
"""

from __future__ import annotations

import asyncio
from collections import deque

from market.feeds.events import FeedEvent

DEFAULT_SIZE = 4096


class Outbox:
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"an outbox needs size >= 1, got {size}")
        self.size, self.dropped, self.closed = size, 0, False
        self._events: deque[FeedEvent] = deque()
        self._arrived, self._taken = asyncio.Event(), asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: FeedEvent) -> None:
        if self.closed:
            return
        if len(self._events) >= self.size:
            self._events.popleft()
            self.dropped += 1
        self._events.append(event)
        self._arrived.set()

    async def room(self, events: int = 1) -> None:
        """Wait until `events` more can be put without dropping any (or the outbox is closed)."""
        while len(self._events) > self.size - min(events, self.size) and not self.closed:
            self._taken.clear()
            await self._taken.wait()

    async def get(self) -> FeedEvent | None:
        """The oldest event; None once the outbox is closed and empty."""
        while not self._events:
            if self.closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        self._taken.set()
        return self._events.popleft()

    def close(self) -> None:
        self.closed = True
        self._arrived.set()
        self._taken.set()

    def __aiter__(self) -> Outbox:
        return self

    async def __anext__(self) -> FeedEvent:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event
