"""Feed specs read into feeds (and refused with the form to use), the outbox between feeds and their
consumer, and a feed that fails ending as stopped with its error instead of raising into the consumer."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from market.candles import Candles
from market.feeds import BarClosed, BybitFeed, Feed, FeedOptions, FeedState, Outbox, StateChanged, open_feed
from market.feeds.bybit import MAINNET_REST, MAINNET_WS, BybitSettings
from tests.market.feeds.conftest import run


@pytest.mark.parametrize(("spec", "canonical", "url"), [
    ("bybit:linear:BTCUSDT:1", "bybit:linear:BTCUSDT:1", f"{MAINNET_WS}/linear"),
    ("bybit:spot:ethusdt:5m", "bybit:spot:ETHUSDT:5", f"{MAINNET_WS}/spot"),
    ("bybit:inverse:BTCUSD:1h", "bybit:inverse:BTCUSD:60", f"{MAINNET_WS}/inverse"),
    ("bybit:linear:BTCUSDT:D", "bybit:linear:BTCUSDT:D", f"{MAINNET_WS}/linear"),
])
def test_bybit_specs_name_category_symbol_and_interval_with_mainnet_defaults(spec, canonical, url):
    feed = open_feed(spec)
    assert isinstance(feed, BybitFeed) and feed.spec == canonical and feed.url == url
    assert feed.rest is not None and feed.settings.rest_url == MAINNET_REST
    assert feed.status().state.status == "connecting"
    run(feed.stop())  # never started: stopping still closes its REST client
    assert feed.rest._http.is_closed and feed.status().state.status == "stopped"


def test_endpoints_and_capacity_come_from_the_options():
    options = FeedOptions(capacity=64, bybit=BybitSettings(ws_url="ws://127.0.0.1:9/v5/public/",
                                                           rest_url="http://127.0.0.1:9"))
    feed = open_feed("bybit:linear:BTCUSDT:5", options)
    assert isinstance(feed, BybitFeed)
    assert feed.url == "ws://127.0.0.1:9/v5/public/linear" and feed.track.window.capacity == 64
    assert (feed.kline_topic, feed.book_topic) == ("kline.5.BTCUSDT", "orderbook.1.BTCUSDT")
    run(feed.stop())


@pytest.mark.parametrize(("spec", "message"), [
    ("kafka:topic", "unknown feed 'kafka:topic'; use bybit:CATEGORY:SYMBOL:INTERVAL"),
    ("bybit", "unknown feed"),
    ("bybit:linear:BTCUSDT", "is not CATEGORY:SYMBOL:INTERVAL"),
    ("bybit:linear::1", "is not CATEGORY:SYMBOL:INTERVAL"),
    ("bybit:option:BTCUSDT:1", "category 'option' is not one of linear, spot, inverse"),
    ("bybit:linear:BTC-USDT:1", "must be letters and digits"),
    ("bybit:linear:BTCUSDT:7", "interval '7' is not one Bybit serves"),
    ("replay:", "does not exist"),
])
def test_a_bad_spec_is_refused_naming_the_form_to_use(spec, message):
    with pytest.raises(ValueError, match=message):
        open_feed(spec)


def bar_event(ts: int) -> BarClosed:
    bar = Candles.from_arrays([ts], [1.0], [1.0], [1.0], [1.0], [1.0])
    return BarClosed("X", bar, bar, None, False, 0.0)


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
