"""Feed specs read into feeds (and refused with the form to use), the outbox between feeds and their
consumer, and a feed that fails ending as stopped with its error instead of raising into the consumer."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from market.candles import Candles
from market.feeds import BarClosed, Feed, FeedState, Outbox, StateChanged, open_feed
from tests.market.feeds.conftest import run


def bar_event(ts: int) -> BarClosed:
    bar = Candles.from_arrays([ts], [1.0], [1.0], [1.0], [1.0], [1.0])
    return BarClosed("X", bar, bar, None, False, 0.0)


def test_an_unknown_kind_of_feed_is_refused_naming_the_forms():
    with pytest.raises(ValueError, match="unknown feed 'kafka:topic'; use replay"):
        open_feed("kafka:topic")


def test_a_full_outbox_drops_the_oldest_event_and_counts_it():
    outbox = Outbox(size=2)
    for ts in (1, 2, 3):
        outbox.put(bar_event(ts * 60_000))

    async def take() -> list[int]:
        outbox.close()
        return [int(e.bar.ts[0]) // 60_000 async for e in outbox if isinstance(e, BarClosed)]

    assert run(take()) == [2, 3] and outbox.dropped == 1


def test_room_waits_until_the_consumer_takes_an_event():
    async def scenario() -> list[str]:
        outbox, seen = Outbox(size=1), []
        outbox.put(bar_event(60_000))

        async def producer() -> None:
            await outbox.room()
            seen.append("room")
            outbox.put(bar_event(120_000))

        task = asyncio.create_task(producer())
        await asyncio.sleep(0.02)
        seen.append("taking")
        await outbox.get()
        await task
        return seen

    assert run(scenario()) == ["taking", "room"]


class Failing(Feed):
    kind = "failing"

    async def run(self) -> None:
        self.track.set_connected(True)
        raise RuntimeError("the source broke")


def test_a_feed_that_fails_ends_stopped_with_the_error_and_closes_its_outbox():
    async def scenario() -> list[FeedState]:
        async with Failing("failing:x", "X", "1", 60_000, lambda ts: ts + 60_000) as feed:
            return [e.state async for e in feed if isinstance(e, StateChanged)]

    states = run(scenario())
    assert [s.status for s in states] == ["live", "stopped"]
    assert states[-1].reason == "failed: RuntimeError('the source broke')"


def test_a_feed_cannot_be_started_twice():
    async def scenario() -> None:
        async with Failing("failing:x", "X", "1", 60_000, lambda ts: ts + 60_000) as feed:
            with pytest.raises(RuntimeError, match="already started"):
                feed.start()

    run(scenario())


def test_feeds_hysteresis_and_the_window_import_neither_torch_nor_fastapi():
    code = ("import sys, market.feeds, market.hysteresis, market.rolling;"
            "sys.exit(bool({'torch', 'fastapi'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
