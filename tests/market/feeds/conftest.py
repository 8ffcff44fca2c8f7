"""Helpers for driving feeds from synchronous tests: each scenario runs in its own event loop, bounded
in time, and reads events until it has the bars it waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from market.feeds import BarClosed, Feed, FeedEvent, FeedState, StateChanged

T = TypeVar("T")
SCENARIO_SECONDS = 20.0


def run(scenario: Awaitable[T], seconds: float = SCENARIO_SECONDS) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario, seconds)
    return asyncio.run(bounded())


class Reader:
    """Events from one feed (or a shared outbox), with the states seen on the way."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.bars: list[BarClosed] = []
        self.states: list[FeedState] = []
        self.by_symbol: dict[str, list[BarClosed]] = {}

    async def bars_until(self, count: int, symbol: str | None = None,
                         seconds: float = 5.0) -> list[BarClosed]:
        """Read until `count` bars (of `symbol`, if given) have arrived in all; return those bars."""
        async with asyncio.timeout(seconds):
            while len(self.by_symbol.get(symbol, []) if symbol else self.bars) < count:
                event = await self.feed.outbox.get()
                assert event is not None, f"the outbox closed after {len(self.bars)} bars"
                self._keep(event)
        return self.by_symbol.get(symbol, []) if symbol else self.bars

    async def state(self, feed: Feed, wanted: Callable[[FeedState], bool], seconds: float = 5.0) -> FeedState:
        """Wait until `feed`'s state satisfies `wanted` (reading and keeping events meanwhile)."""
        async with asyncio.timeout(seconds):
            while not wanted(feed.status().state):
                try:
                    event = await asyncio.wait_for(self.feed.outbox.get(), 0.05)
                except TimeoutError:
                    continue
                if event is not None:
                    self._keep(event)
        return feed.status().state

    async def drain(self) -> None:
        """Read everything until the outbox closes (the feed has ended)."""
        while (event := await self.feed.outbox.get()) is not None:
            self._keep(event)

    def _keep(self, event: FeedEvent) -> None:
        if isinstance(event, BarClosed):
            self.bars.append(event)
            self.by_symbol.setdefault(event.symbol, []).append(event)
        elif isinstance(event, StateChanged):
            self.states.append(event.state)


@pytest.fixture()
def reader_for() -> Callable[[Feed], Reader]:
    return Reader
