"""The service following Bybit symbols on the tests' own exchange (WebSocket and REST on 127.0.0.1):
bars flow into predictions, outages end in a reconnect and a backfill with no missing event, a rejected
topic degrades its symbol alone, bad frames are dropped and counted, a slow SSE client is dropped while
a fast one keeps receiving, and a stream resumes from Last-Event-ID."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.live.hub import QUEUE_FULL
from market.feeds.events import INVALID_CANDLE, MALFORMED, NON_NUMERIC
from market.rolling import DUPLICATE, OUT_OF_ORDER
from tests.app.live.conftest import (
    MINUTE_MS,
    consecutive,
    listen,
    recent,
    run,
    serving,
    settings,
    symbol_state,
)
from tests.market.feeds.exchange import Exchange, kline_frame, minute_bars

pytestmark = pytest.mark.slow  # every test here starts the real server and an exchange

HISTORY, PUBLISHED = 200, 400  # bars closed before the service starts, and bars the tests may publish
WINDOW_BARS = 120
BTC = minute_bars(HISTORY + PUBLISHED, seed=1)
ETH = minute_bars(HISTORY + PUBLISHED, seed=2)
FEEDS = ("bybit:linear:BTCUSDT:1", "bybit:linear:ETHUSDT:1")


@asynccontextmanager
async def following(store, feeds=FEEDS, rejected=(), send_buffer=None,
                    **overrides) -> AsyncIterator[tuple[Exchange, Any]]:
    """The exchange with HISTORY bars closed and the service following `feeds` on it, live. The history
    ends a minute before now, as the service starts (the start-up backfill asks for what has closed by
    the real clock); the bars published later lie in the future, which nothing checks: a bar closes
    when the exchange says so. `exchange.series` holds the bars as served."""
    series = {"BTCUSDT": recent(BTC, HISTORY - 1, MINUTE_MS), "ETHUSDT": recent(ETH, HISTORY - 1, MINUTE_MS)}
    async with Exchange(series, HISTORY) as exchange:
        exchange.rejected.update(rejected)
        s = settings(store, exchange, feeds, live_window_bars=WINDOW_BARS, **overrides)
        async with serving(s, send_buffer) as client:
            await symbol_state(client, "BTCUSDT", lambda x: x["state"]["status"] == "live")
            yield exchange, client


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_closed_bars_flow_into_predictions_pushed_and_shown(quick_store):
    async def scenario():
        async with following(quick_store) as (exchange, client):
            btc = exchange.series["BTCUSDT"]
            stream = await listen(client, "BTCUSDT")
            await exchange.publish("BTCUSDT", 5)
            await stream.until(lambda s: len(s.bars) >= 5)
            latest = (await client.get("/symbols/BTCUSDT")).json()
            listing = (await client.get("/symbols")).json()["symbols"]
            await stream.close()
            return btc, stream, latest, listing

    btc, stream, latest, listing = run(scenario())
    ids = stream.ids
    assert ids == btc.ts[HISTORY:HISTORY + 5].tolist(), "one event per closed bar, in order"
    for ts, body in stream.bars:
        assert body["bar"]["ts"] == ts and body["symbol"] == "BTCUSDT" and not body["backfilled"]
        assert isinstance(body["prediction"], float) and body["tier"] in {"M0", "M1", "M2", "M3"}
        assert body["regime"]["name"] in {"calm", "normal", "volatile", "crisis"}
        assert body["target"]["horizon"] >= 1 and body["problem"] is None
        assert "order_flow" in body["regime"]["estimated"]  # Bybit bars have no taker-buy volume
    assert latest["bar"]["ts"] == ids[-1] and latest["prediction"] == stream.bars[-1][1]["prediction"]
    assert latest["stale"] is False and latest["state"]["status"] == "live"
    shown = next(s for s in listing if s["symbol"] == "BTCUSDT")
    assert shown["feed"] == "bybit:linear:BTCUSDT:1" and shown["last_bar_ts"] == ids[-1]
    assert shown["window_bars"] == WINDOW_BARS and shown["counters"]["bars"] == 5
    assert 0 <= shown["age_seconds"] < 10


@pytest.mark.parametrize("outage", ["disconnect", "silence"])
def test_an_outage_ends_in_a_reconnect_and_a_backfill_with_no_missing_event(quick_store, outage):
    async def scenario():
        async with following(quick_store) as (exchange, client):
            btc = exchange.series["BTCUSDT"]
            stream = await listen(client, "BTCUSDT")
            await exchange.publish("BTCUSDT", 3)
            await stream.until(lambda s: len(s.bars) >= 3)
            if outage == "disconnect":
                await exchange.disconnect()
            else:
                exchange.silence()  # no pong, no data: found dead after the pong timeout
            await exchange.publish("BTCUSDT", 4, push=False)  # closed while the feed was away
            await symbol_state(client, "BTCUSDT", lambda x: x["counters"]["reconnects"] >= 1
                               and x["state"]["status"] == "live")
            await exchange.subscribed("kline.1.BTCUSDT")
            await exchange.publish("BTCUSDT", 2)
            await stream.until(lambda s: len(s.bars) >= 9)
            summary = await symbol_state(client, "BTCUSDT", lambda x: True)
            metrics = (await client.get("/metrics")).text
            await stream.close()
            return btc, stream, summary, metrics

    btc, stream, summary, metrics = run(scenario())
    assert stream.ids == btc.ts[HISTORY:HISTORY + 9].tolist() and consecutive(stream.ids)
    backfilled = [ts for ts, body in stream.bars if body["backfilled"]]
    assert backfilled == btc.ts[HISTORY + 3:HISTORY + 7].tolist()  # the four missed, recovered over REST
    assert all(isinstance(body["prediction"], float) for _, body in stream.bars)
    assert summary["counters"]["reconnects"] >= 1 and summary["counters"]["backfills"] >= 2
    assert metric(metrics, "tiered_feed_reconnects_total", symbol="BTCUSDT") >= 1
    assert metric(metrics, "tiered_feed_bars_total", symbol="BTCUSDT", source="backfill") == 4
    assert metric(metrics, "tiered_feed_bars_total", symbol="BTCUSDT", source="live") == 5


def test_a_rejected_topic_degrades_its_symbol_while_the_others_keep_flowing(quick_store):
    async def scenario():
        async with following(quick_store, rejected={"kline.1.ETHUSDT"}) as (exchange, client):
            btc = exchange.series["BTCUSDT"]
            eth = await symbol_state(client, "ETHUSDT", lambda x: x["state"]["status"] == "degraded")
            stream = await listen(client, "BTCUSDT")
            await exchange.publish("BTCUSDT", 3)
            await stream.until(lambda s: len(s.bars) >= 3)
            ready = (await client.get("/readyz")).json()
            metrics = (await client.get("/metrics")).text
            await stream.close()
            return btc, eth, stream, ready, metrics

    btc, eth, stream, ready, metrics = run(scenario())
    reason = eth["state"]["reason"]
    assert "kline.1.ETHUSDT rejected" in reason and "handler not found" in reason, "Bybit's own message"
    assert stream.ids == btc.ts[HISTORY:HISTORY + 3].tolist()
    assert ready["status"] == "degraded" and ready["feeds"]["BTCUSDT"]["status"] == "live"
    assert ready["feeds"]["ETHUSDT"]["status"] == "degraded"
    assert "kline.1.ETHUSDT rejected" in ready["feeds"]["ETHUSDT"]["reason"]
    assert metric(metrics, "tiered_feed_up", symbol="ETHUSDT") == 0
    assert metric(metrics, "tiered_feed_up", symbol="BTCUSDT") == 1


def test_bad_frames_are_dropped_counted_named_and_never_predicted(quick_store, caplog):
    topic = "kline.1.BTCUSDT"

    async def scenario():
        async with following(quick_store) as (exchange, client):
            btc = exchange.series["BTCUSDT"]
            stream = await listen(client, "BTCUSDT")
            await exchange.publish("BTCUSDT", 3)
            await stream.until(lambda s: len(s.bars) >= 3)
            old, last, following_bar = (btc[HISTORY + k:HISTORY + k + 1] for k in (0, 2, 3))
            below = str(float(following_bar.low[0]) - 1)
            bad = [(MALFORMED, "{not json"),
                   (NON_NUMERIC, kline_frame("BTCUSDT", following_bar, True, fields={"high": "abc"})),
                   (INVALID_CANDLE, kline_frame("BTCUSDT", following_bar, True, fields={"high": below})),
                   (OUT_OF_ORDER, kline_frame("BTCUSDT", old, True)),  # earlier than the last bar
                   (DUPLICATE, kline_frame("BTCUSDT", last, True))]  # the last bar again
            told = {}
            for n, (reason, frame) in enumerate(bad, 1):
                await exchange.push(topic, frame)
                summary = await symbol_state(client, "BTCUSDT",
                                             lambda x, n=n: sum(x["counters"]["dropped"].values()) == n)
                told[reason] = summary["last_drop"]
            await exchange.publish("BTCUSDT", 2)  # the bar whose frame was malformed, then the next
            await stream.until(lambda s: len(s.bars) >= 5)
            metrics = (await client.get("/metrics")).text
            await stream.close()
            return btc, stream, summary, metrics, told

    caplog.set_level(logging.WARNING, "app.live")
    btc, stream, summary, metrics, told = run(scenario())
    dropped = summary["counters"]["dropped"]
    reasons = (MALFORMED, NON_NUMERIC, INVALID_CANDLE, OUT_OF_ORDER, DUPLICATE)
    assert dropped == dict.fromkeys(reasons, 1), dropped
    assert told[MALFORMED] == f"{MALFORMED}: not JSON: {{not json"
    assert told[NON_NUMERIC] == f"{NON_NUMERIC}: {topic} data[0].high is 'abc', not a number"
    assert told[INVALID_CANDLE].startswith(f"{INVALID_CANDLE}: {topic} data[0]: high:")
    for reason in (OUT_OF_ORDER, DUPLICATE):
        assert told[reason].startswith(reason) and "bar at" in told[reason], told[reason]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "app.live")
    assert all(f"1 {reason}" in logged for reason in reasons), f"the log counts every drop: {logged}"
    assert f"the last input refused: {told[DUPLICATE]}" in logged
    assert stream.ids == btc.ts[HISTORY:HISTORY + 5].tolist(), "nothing dropped became an event"
    for reason in reasons:
        assert metric(metrics, "tiered_feed_dropped_total", symbol="BTCUSDT", reason=reason) == 1, reason


async def slow_reader(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An SSE client that sends its request and then reads nothing, with a small receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


def test_a_slow_sse_client_is_dropped_while_a_fast_one_keeps_receiving(quick_store):
    bars, QUEUE = 400, 128

    async def scenario():
        async with following(quick_store, live_subscriber_queue=QUEUE,
                             send_buffer=16384) as (exchange, client):
            btc = exchange.series["BTCUSDT"]
            port = int(str(client.base_url).rsplit(":", 1)[1])
            fast = await listen(client, "BTCUSDT")
            reader, writer = await slow_reader(port, "/symbols/BTCUSDT/events")
            try:
                await symbol_state(client, "BTCUSDT", lambda x: x["subscribers"] == 2)
                # Bursts of 10 bars, the next once the fast client has read the last: it keeps up by
                # construction (on a loaded machine it shares this event loop with the server), while
                # the slow one, reading nothing, falls further behind with every burst.
                for published in range(10, bars + 1, 10):
                    await exchange.publish("BTCUSDT", 10)
                    # 30 s: in the full suite on 2 loaded cores a burst once took over 10 s to arrive.
                    await fast.until(lambda s, n=published: len(s.bars) >= n, seconds=30.0)
                summary = await symbol_state(client, "BTCUSDT", lambda x: x["subscribers"] == 1)
                metrics = (await client.get("/metrics")).text
                # Once it reads, the slow client finds why it was dropped, and the end of its stream.
                seen = b""
                async with asyncio.timeout(10):
                    while not seen.endswith(b"0\r\n\r\n"):
                        chunk = await reader.read(1 << 16)
                        assert chunk, "the connection closed before the stream's end"
                        seen += chunk
            finally:
                writer.close()
                await fast.close()
            return btc, fast, summary, metrics, seen.decode()

    btc, fast, summary, metrics, seen = run(scenario())
    assert fast.ids == btc.ts[HISTORY:HISTORY + bars].tolist(), "the fast client missed nothing"
    assert summary["counters"]["events_dropped"] == 0, "the feed was never held back"
    assert metric(metrics, "tiered_live_subscribers_dropped_total", transport="sse", reason=QUEUE_FULL) == 1
    assert "event: dropped" in seen and QUEUE_FULL in seen
    slow_ids = [int(i) for i in re.findall(r"^id: (\d+)", seen, re.M)]
    assert slow_ids == sorted(slow_ids) and len(slow_ids) < bars - QUEUE, "it fell behind and was cut off"


def test_a_stream_resumes_after_last_event_id_and_says_when_events_are_gone(quick_store):
    async def scenario():
        async with following(quick_store, live_buffer_events=4) as (exchange, client):
            btc = exchange.series["BTCUSDT"]
            first = await listen(client, "BTCUSDT")
            await exchange.publish("BTCUSDT", 3)
            await first.until(lambda s: len(s.bars) >= 3)
            await first.close()
            seen = first.ids[-1]
            await exchange.publish("BTCUSDT", 3)  # while the client is away
            await symbol_state(client, "BTCUSDT", lambda x: x["last_bar_ts"] == int(btc.ts[HISTORY + 5]))
            resumed = await listen(client, "BTCUSDT", {"Last-Event-ID": str(seen)})
            await resumed.until(lambda s: len(s.bars) >= 3)
            late = await listen(client, "BTCUSDT", {"Last-Event-ID": str(int(btc.ts[0]))})
            await late.until(lambda s: len(s.bars) >= 4 and len(s.named) >= 1)
            bad = await client.get("/symbols/BTCUSDT/events", headers={"Last-Event-ID": "soon"})
            unknown = await client.get("/symbols/DOGEUSDT/events")
            for s in (resumed, late):
                await s.close()
            return btc, resumed, late, bad, unknown

    btc, resumed, late, bad, unknown = run(scenario())
    assert resumed.ids == btc.ts[HISTORY + 3:HISTORY + 6].tolist(), "exactly the missed events, no repeat"
    kind, gap = late.named[0]
    assert kind == "gap" and gap["after"] == int(btc.ts[0]) and gap["resumed_from"] == late.ids[0]
    assert late.ids == btc.ts[HISTORY + 2:HISTORY + 6].tolist(), "the four events still kept"
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Last-Event-ID"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_symbol"


def test_a_symbol_without_a_prediction_yet_is_stale_and_says_so(quick_store):
    async def scenario():
        async with Exchange({"BTCUSDT": recent(BTC, HISTORY - 1, MINUTE_MS)}, HISTORY) as exchange:
            s = settings(quick_store, exchange, ("bybit:linear:BTCUSDT:1",), live_window_bars=WINDOW_BARS)
            async with serving(s) as client:
                await symbol_state(client, "BTCUSDT", lambda x: x["state"]["status"] == "live")
                return (await client.get("/symbols/BTCUSDT")).json()

    body = run(scenario())
    assert body["bar"] is None and body["prediction"] is None and body["stale"] is True
    assert body["state"]["status"] == "live"

