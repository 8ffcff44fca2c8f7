"""The Bybit feed against the tests' own exchange on 127.0.0.1 (tests/market/feeds/exchange.py):
closed bars flow in order, a cut connection and a silent one both end in a reconnect and a backfill
with no bar missing, a rejected topic degrades its symbol alone, bad frames are dropped and counted,
and a hole REST cannot fill degrades the symbol until it is mended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest

from market.feeds import BybitFeed, Outbox
from market.feeds.events import (
    DELTA_BEFORE_SNAPSHOT,
    INVALID_BOOK,
    INVALID_CANDLE,
    MALFORMED,
    NON_NUMERIC,
    UNKNOWN_TOPIC,
)
from market.rolling import DUPLICATE, OUT_OF_ORDER
from tests.market.feeds.conftest import Reader, run
from tests.market.feeds.exchange import Exchange, book_frame, kline_frame, minute_bars

HISTORY, CAPACITY = 60, 40
BTC = minute_bars(120, seed=1)
KLINE = "kline.1.BTCUSDT"


def feed_on(exchange: Exchange, symbol: str = "BTCUSDT", outbox: Outbox | None = None,
            **settings) -> BybitFeed:
    return BybitFeed("linear", symbol, "1", capacity=CAPACITY, settings=exchange.settings(**settings),
                     clock=exchange.clock, outbox=outbox)


@asynccontextmanager
async def following(**settings) -> AsyncIterator[tuple[Exchange, BybitFeed, Reader]]:
    """The exchange with HISTORY bars closed, and a feed on BTCUSDT that has gone live."""
    async with Exchange({"BTCUSDT": BTC}, HISTORY) as exchange, feed_on(exchange, **settings) as feed:
        reader = Reader(feed)
        await reader.state(feed, lambda s: s.status == "live")
        yield exchange, feed, reader


def ts_of(bars) -> list[int]:
    return [int(b.bar.ts[0]) for b in bars]


def expected_ts(first: int, last: int) -> list[int]:
    return BTC.ts[first:last].tolist()


def assert_window_is_exchange_bars(feed: BybitFeed, upto: int) -> None:
    window = feed.window()
    assert window.ts.tolist() == BTC.ts[upto - CAPACITY:upto].tolist()
    assert np.array_equal(window.close, BTC.close[upto - CAPACITY:upto])
    assert feed.track.missing() == (0, 0)


def assert_each_event_carries_its_full_window(bars) -> None:
    for b in bars:
        j = int(np.searchsorted(BTC.ts, b.bar.ts[0])) + 1
        assert b.window.ts.tolist() == BTC.ts[j - CAPACITY:j].tolist(), b.bar.ts[0]
        assert np.array_equal(b.window.close, BTC.close[j - CAPACITY:j])


def test_closed_bars_flow_to_the_consumer_in_order_after_a_warm_window():
    async def scenario():
        async with following() as (exchange, feed, reader):
            assert_window_is_exchange_bars(feed, HISTORY)  # the warm-up: REST, no events
            await exchange.subscribed("orderbook.1.BTCUSDT")
            await exchange.push("orderbook.1.BTCUSDT", book_frame("BTCUSDT", "snapshot", [("99.9", "3")],
                                                                  [("100.1", "1")], u=7))
            await exchange.publish("BTCUSDT", 5)
            bars = await reader.bars_until(5)
            return feed, bars, reader

    feed, bars, reader = run(scenario())
    assert ts_of(bars) == expected_ts(HISTORY, HISTORY + 5)
    assert not any(b.backfilled for b in bars)
    assert [b.bar.close[0] for b in bars] == BTC.close[HISTORY:HISTORY + 5].tolist()  # the confirmed close
    assert_each_event_carries_its_full_window(bars)
    assert bars[-1].book is not None and bars[-1].book.spread_bps == pytest.approx(20.0)
    assert bars[-1].book.imbalance == 0.5
    assert [s.status for s in reader.states] == ["connecting", "live"]
    status = feed.status()
    assert status.state.status == "stopped" and status.counters.bars == 5 and status.counters.dropped == {}
    assert status.spec == "bybit:linear:BTCUSDT:1" and status.interval_ms == 60_000


async def cut(exchange: Exchange) -> None:
    await exchange.disconnect()  # mid-stream, without a close frame


async def mute(exchange: Exchange) -> None:
    exchange.silence()  # the connection stays open; nothing comes back, not even a pong


@pytest.mark.parametrize(("outage", "why"), [(cut, "connection closed"), (mute, "no pong within 0.3 s")],
                         ids=["disconnect", "silent server"])
def test_an_outage_ends_in_a_reconnect_and_a_backfill_with_no_bar_missing(outage, why):
    before, during, after = 3, 4, 2

    async def scenario():
        async with following() as (exchange, feed, reader):
            await exchange.publish("BTCUSDT", before)
            await reader.bars_until(before)
            await outage(exchange)
            await exchange.publish("BTCUSDT", during, push=False)  # closed while the feed hears nothing
            await reader.bars_until(before + during)
            await exchange.subscribed(KLINE)
            await exchange.publish("BTCUSDT", after)
            return feed, await reader.bars_until(before + during + after), reader

    feed, bars, reader = run(scenario())
    total = before + during + after
    assert ts_of(bars) == expected_ts(HISTORY, HISTORY + total)
    assert [b.backfilled for b in bars] == [False] * before + [True] * during + [False] * after
    assert_each_event_carries_its_full_window(bars)
    assert_window_is_exchange_bars(feed, HISTORY + total)
    counters = feed.status().counters
    assert counters.reconnects >= 1 and counters.backfills >= 2 and counters.backfilled == during
    assert any(s.status == "connecting" and why in s.reason for s in reader.states), reader.states
    assert reader.states[-1].status == "live"


def test_a_subscription_that_goes_silent_while_pongs_continue_is_a_dead_connection():
    async def scenario():
        async with following(silence=0.3) as (_, feed, reader):
            return await reader.state(feed, lambda s: "went silent" in s.reason)

    assert "no kline push for" in run(scenario()).reason


def test_a_rejected_topic_degrades_that_symbol_while_the_others_keep_flowing():
    async def scenario():
        outbox = Outbox()  # one consumer for both symbols
        async with Exchange({"BTCUSDT": BTC}, HISTORY) as exchange:
            exchange.rejected.add("kline.1.NOTASYMBOL")
            async with feed_on(exchange, outbox=outbox) as good, feed_on(exchange, "NOTASYMBOL",
                                                                           outbox=outbox) as bad:
                reader = Reader(good)
                await reader.state(good, lambda s: s.status == "live")
                rejected = await reader.state(bad, lambda s: s.status == "degraded")
                await exchange.publish("BTCUSDT", 3)
                bars = await reader.bars_until(3, symbol="BTCUSDT")
                return rejected, bars, bad.status(), reader

    rejected, bars, bad, reader = run(scenario())
    assert "subscription to kline.1.NOTASYMBOL rejected: error:handler not found" in rejected.reason
    assert ts_of(bars) == expected_ts(HISTORY, HISTORY + 3)
    assert "NOTASYMBOL" not in reader.by_symbol
    assert bad.counters.reconnects >= 1  # retried on the backoff, still refused


def test_a_rejected_book_topic_degrades_the_symbol_but_bars_still_flow():
    async def scenario():
        async with Exchange({"BTCUSDT": BTC}, HISTORY) as exchange:
            exchange.rejected.add("orderbook.1.BTCUSDT")
            async with feed_on(exchange) as feed:
                reader = Reader(feed)
                state = await reader.state(feed, lambda s: s.status == "degraded")
                await exchange.publish("BTCUSDT", 2)
                return state, await reader.bars_until(2)

    state, bars = run(scenario())
    assert "order-book subscription orderbook.1.BTCUSDT rejected" in state.reason
    assert ts_of(bars) == expected_ts(HISTORY, HISTORY + 2) and bars[-1].book is None


def test_malformed_non_numeric_invalid_out_of_order_and_duplicate_frames_are_dropped_and_counted():
    async def scenario():
        async with following() as (exchange, feed, reader):
            await exchange.publish("BTCUSDT", 1)
            await reader.bars_until(1)
            next_bar, old_bar = BTC[HISTORY + 1:HISTORY + 2], BTC[HISTORY - 5:HISTORY - 4]
            for frame in (
                "{not json",
                '["a", "list"]',
                kline_frame("BTCUSDT", next_bar, True, fields={"open": "abc"}),
                kline_frame("BTCUSDT", next_bar, True, fields={"close": "NaN"}),
                kline_frame("BTCUSDT", next_bar, True, fields={"confirm": "yes"}),
                kline_frame("BTCUSDT", next_bar, True, fields={"high": "1.0"}),  # high below low
                kline_frame("BTCUSDT", old_bar, True),  # out of order
                kline_frame("BTCUSDT", BTC[HISTORY:HISTORY + 1], True),  # the bar already in
                book_frame("BTCUSDT", "snapshot", [("101", "1")], [("100", "1")], u=3),  # crossed
                book_frame("BTCUSDT", "delta", [("99", "1")], [], u=4),  # no snapshot to apply to
                book_frame("BTCUSDT", "snapshot", [("x", "1")], [("100", "1")], u=5),
            ):
                await exchange.push(KLINE, frame)
            await exchange.push(KLINE, {**kline_frame("ETHUSDT", next_bar, True)})
            await exchange.publish("BTCUSDT", 2)
            return feed, await reader.bars_until(3)

    feed, bars = run(scenario())
    assert ts_of(bars) == expected_ts(HISTORY, HISTORY + 3)  # nothing bad got in, nothing good was lost
    dropped = feed.status().counters.dropped
    assert dropped == {MALFORMED: 3, NON_NUMERIC: 3, INVALID_CANDLE: 1, OUT_OF_ORDER: 1, DUPLICATE: 1,
                       INVALID_BOOK: 1, DELTA_BEFORE_SNAPSHOT: 1, UNKNOWN_TOPIC: 1}
    assert_window_is_exchange_bars(feed, HISTORY + 3)
    assert feed.status().counters.gaps == 0


def test_a_missed_bar_is_a_gap_filled_over_rest_before_the_next_bar():
    async def scenario():
        async with following() as (exchange, feed, reader):
            await exchange.publish("BTCUSDT", 1)
            await exchange.publish("BTCUSDT", 2, push=False)  # two confirm frames lost
            await exchange.publish("BTCUSDT", 1)
            return feed, await reader.bars_until(4)

    feed, bars = run(scenario())
    assert ts_of(bars) == expected_ts(HISTORY, HISTORY + 4)
    assert [b.backfilled for b in bars] == [False, True, True, False]
    assert_each_event_carries_its_full_window(bars)
    assert feed.status().counters.gaps == 1
    assert_window_is_exchange_bars(feed, HISTORY + 4)


def test_a_gap_rest_cannot_fill_degrades_the_symbol_until_a_later_bar_mends_it():
    async def scenario():
        async with following() as (exchange, feed, reader):
            exchange.rest_error = 10001
            await exchange.publish("BTCUSDT", 2, push=False)
            await exchange.publish("BTCUSDT", 1)
            holed = await reader.state(feed, lambda s: s.status == "degraded")
            await reader.bars_until(1)
            exchange.rest_error = None
            await exchange.publish("BTCUSDT", 1)
            await reader.bars_until(2)
            return feed, holed, reader

    feed, holed, reader = run(scenario())
    assert "REST backfill failed" in holed.reason and "misses 2 bar(s)" in holed.reason
    assert ts_of(reader.bars) == [BTC.ts[HISTORY + 2], BTC.ts[HISTORY + 3]]  # the mended bars are past
    assert reader.states[-1].status == "live"
    assert_window_is_exchange_bars(feed, HISTORY + 4)
    assert feed.status().counters.backfill_failures == 1
