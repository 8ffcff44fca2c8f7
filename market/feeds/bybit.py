"""Bybit v5 public WebSocket: one symbol's closed klines and top of book, live, with no hole in the window.

    feed = BybitFeed("linear", "BTCUSDT", "1")       # or open_feed("bybit:linear:BTCUSDT:1")
    async with feed:
        async for event in feed: ...

What it relies on (shared/data/bybit/ws/README.md, from bybit-exchange/docs @ 072c197d and frames
client authors recorded):
  * public streams at {ws_url}/{spot|linear|inverse}, no authentication; mainnet
    wss://stream.bybit.com/v5/public, testnet wss://stream-testnet.bybit.com/v5/public;
  * `{"req_id", "op": "subscribe", "args": [topic]}` is answered by an ack whose `success: false`
    names the rejected topic in `ret_msg`; one rejected topic has been seen to silence the others on
    its connection while ping-pong carries on;
  * `kline.{interval}.{symbol}` pushes every 1-60 s; a candle has closed only once `confirm` is true;
    klines carry no taker-buy volume; `orderbook.1.{symbol}` sends snapshots (deltas handled anyway);
  * `{"op": "ping"}` about every 20 s is answered by a pong; idle connections are cut after ~10 min
    and any connection may drop at any time; at most 500 connections per 5 minutes per IP;
  * REST `GET /v5/market/kline` (market/bybit.py) gives the closed bars of any range, newest first.

How it behaves:
  * one WebSocket connection per symbol, so a rejected topic or a dead connection touches only that
    symbol (a desk's tens of symbols stay far inside the connection limit);
  * Bybit's own ping every `ping_interval`; no pong within `pong_timeout`, no kline push for
    `silence` seconds, or any close is a dead connection; reconnects wait `backoff` · 2^attempt
    (at most `max_backoff`) times a random factor in [0.5, 1], the attempt count restarting after a
    connection that stayed up `stable_after` seconds; the websockets library's own pings are off;
  * a rejected kline topic degrades the symbol with Bybit's message and is retried on that backoff; a
    rejected book topic degrades it while bars keep flowing (features then estimate spread and
    imbalance from the candles);
  * the window is filled over REST at start (history, no events), after every reconnect and before
    any bar that arrives later than the next expected one (those bars become `BarClosed` events with
    `backfilled=True`, in order); a backfill that fails leaves a hole, the symbol degraded, and every
    later closed bar tries once to mend it; REST runs in a worker thread (`klines_async`);
  * `publicTrade` is not subscribed: taker-buy volume summed from trades cannot be backfilled (REST
    klines have none and recent-trade returns only the last 1000 trades), so every reconnect would
    leave bars without it, and one dropped trade frame would bias a bar unseen. Bars carry no
    taker-buy volume, as REST klines and a client's Bybit window do.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from market.bybit import BybitClient, bar_end, bybit_interval
from market.candles import Candles
from market.errors import MarketError
from market.feeds.base import DEFAULT_CAPACITY, Feed
from market.feeds.book import LocalBook
from market.feeds.events import QUEUE_FULL, UNKNOWN_TOPIC
from market.feeds.frames import Ack, Dropped, Frame, Klines, Pong, decode
from market.feeds.outbox import Outbox
from market.feeds.track import iso

if TYPE_CHECKING:
    from market.feeds import FeedOptions

CATEGORIES = ("linear", "spot", "inverse")
MAINNET_WS = "wss://stream.bybit.com/v5/public"
MAINNET_REST = "https://api.bybit.com"
MINUTE_MS = 60_000


@dataclass(frozen=True)
class BybitSettings:
    ws_url: str = MAINNET_WS  # + /{category}
    rest_url: str = MAINNET_REST
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    silence: float = 90.0  # seconds without a kline push (they come every 1-60 s) = a dead subscription
    open_timeout: float = 10.0
    ack_timeout: float = 10.0
    backoff: float = 1.0
    max_backoff: float = 60.0
    stable_after: float = 60.0
    book_max_age: float = 10.0  # a book older than this is not handed out with a bar
    rest_retries: int = 3  # the REST client's retries of a backfill (rate limits, 5xx, network)
    rest_backoff: float = 0.5  # its first wait between them, doubled per retry
    bar_queue: int = 1000
    seed: int | None = None  # of the backoff jitter (tests); None: unseeded


class _Dead(Exception):
    """This connection is over; the message says why."""


class _Halted(Exception):
    """The feed stopped while a REST backfill was waiting to retry in its thread."""


@dataclass
class _Session:
    ws: ClientConnection
    last_kline: float  # loop time of the last kline push (or of the connection)
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    kline_ack: asyncio.Future[Ack] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    bars: asyncio.Queue[Candles] = field(default_factory=asyncio.Queue)


class BybitFeed(Feed):
    kind = "bybit"

    def __init__(self, category: str, symbol: str, interval: str, *, capacity: int = DEFAULT_CAPACITY,
                 settings: BybitSettings | None = None, rest: BybitClient | None = None,
                 outbox: Outbox | None = None, clock: Callable[[], float] = time.time) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"Bybit category {category!r} is not one of {', '.join(CATEGORIES)}")
        if not symbol.isalnum():
            raise ValueError(f"Bybit symbol {symbol!r} must be letters and digits, e.g. BTCUSDT")
        self.category, self.interval = category, bybit_interval(interval)
        symbol = symbol.upper()
        self.settings = s = settings or BybitSettings()
        minutes = {"D": 1440, "W": 10080, "M": 31 * 1440}.get(self.interval) or int(self.interval)
        super().__init__(f"bybit:{category}:{symbol}:{self.interval}", symbol, self.interval,
                         minutes * MINUTE_MS, lambda ts: bar_end(ts, self.interval), capacity=capacity,
                         outbox=outbox, book_max_age=s.book_max_age)
        self.url = f"{s.ws_url.rstrip('/')}/{category}"
        self.kline_topic, self.book_topic = f"kline.{self.interval}.{symbol}", f"orderbook.1.{symbol}"
        self._halt = threading.Event()
        self._owns_rest = rest is None
        self.rest = rest or BybitClient(s.rest_url, max_retries=s.rest_retries, backoff=s.rest_backoff,
                                        sleep=self._rest_sleep)
        self._clock, self._random = clock, random.Random(s.seed)
        self._book = LocalBook()

    async def run(self) -> None:
        loop, s, attempt = asyncio.get_running_loop(), self.settings, 0
        self.track.set_connected(False, f"connecting to {self.url}")
        while True:
            started = loop.time()
            try:
                await self._session()
            except _Dead as dead:
                why = str(dead)
            except (OSError, TimeoutError, WebSocketException) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if loop.time() - started >= s.stable_after:
                attempt = 0
            delay = min(s.max_backoff, s.backoff * 2**attempt) * (0.5 + 0.5 * self._random.random())
            attempt += 1
            self.track.counters.reconnects += 1
            self.track.set_connected(False, f"reconnecting in {delay:.1f} s after: {why}")
            await asyncio.sleep(delay)

    async def close(self) -> None:
        self._halt.set()
        if self._owns_rest:
            self.rest.close()

    def _rest_sleep(self, seconds: float) -> None:
        if self._halt.wait(seconds):
            raise _Halted

    # -- one connection ------------------------------------------------------------------------------

    async def _session(self) -> None:
        s, loop = self.settings, asyncio.get_running_loop()
        async with connect(self.url, open_timeout=s.open_timeout, ping_interval=None, close_timeout=1.0,
                           max_size=1 << 20) as ws:
            session = _Session(ws, loop.time(), bars=asyncio.Queue(s.bar_queue))
            self._book = LocalBook()  # Bybit sends a fresh snapshot on every subscription
            for topic in (self.kline_topic, self.book_topic):
                await ws.send(json.dumps({"req_id": topic, "op": "subscribe", "args": [topic]}))
            jobs = (self._read, self._keepalive, self._process)
            tasks = [asyncio.create_task(job(session)) for job in jobs]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            raise _Dead("the connection ended")

    async def _read(self, session: _Session) -> None:
        try:
            async for message in session.ws:
                self._on_frame(session, decode(message))
        except ConnectionClosed as exc:
            raise _Dead(f"connection closed ({exc})") from None
        raise _Dead("the server closed the connection")

    def _on_frame(self, session: _Session, frame: Frame) -> None:
        track = self.track
        if isinstance(frame, Pong):
            session.pong.set()
        elif isinstance(frame, Ack):
            self._on_ack(session, frame)
        elif isinstance(frame, Dropped):
            track.drop(frame.reason, frame.detail)
        elif frame.topic not in (self.kline_topic, self.book_topic):
            track.drop(UNKNOWN_TOPIC, frame.topic)
        elif isinstance(frame, Klines):
            session.last_kline = asyncio.get_running_loop().time()
            for dropped in frame.dropped:
                track.drop(dropped.reason, dropped.detail)
            for bar in frame.closed:
                try:
                    session.bars.put_nowait(bar)
                except asyncio.QueueFull:
                    track.drop(QUEUE_FULL, f"bar at {iso(int(bar.ts[0]))}")
        else:
            book = self._book.apply(frame)
            if isinstance(book, tuple):
                track.drop(*book)
            else:
                track.set_book(book)

    def _on_ack(self, session: _Session, ack: Ack) -> None:
        if ack.topic == self.book_topic:
            self.track.set_problem("book", None if ack.success else
                                   f"order-book subscription {self.book_topic} rejected ({ack.message}); "
                                   "spread and imbalance are estimated from candles")
        elif not session.kline_ack.done():  # the kline topic, or an answer that names no topic
            session.kline_ack.set_result(ack)

    async def _keepalive(self, session: _Session) -> None:
        s, loop, n = self.settings, asyncio.get_running_loop(), 0
        while True:
            n += 1
            session.pong.clear()
            await session.ws.send(json.dumps({"req_id": f"ping-{n}", "op": "ping"}))
            try:
                await asyncio.wait_for(session.pong.wait(), s.pong_timeout)
            except TimeoutError:
                raise _Dead(f"no pong within {s.pong_timeout:g} s") from None
            await asyncio.sleep(s.ping_interval)
            quiet = loop.time() - session.last_kline
            if quiet > s.silence:
                raise _Dead(f"no kline push for {quiet:.3g} s: the subscription went silent")

    async def _process(self, session: _Session) -> None:
        s = self.settings
        try:
            ack = await asyncio.wait_for(session.kline_ack, s.ack_timeout)
        except TimeoutError:
            raise _Dead(f"no answer to subscribing {self.kline_topic} within {s.ack_timeout:g} s") from None
        if not ack.success:
            self.track.set_problem("subscription",
                                   f"subscription to {self.kline_topic} rejected: {ack.message}")
            raise _Dead("subscription rejected")
        self.track.set_problem("subscription", None)
        await self._backfill(int(self._clock() * 1000) - self.track.interval_ms)  # bars closed by now
        self.track.set_connected(True)
        while True:
            bar = await session.bars.get()
            ts, expected = int(bar.ts[0]), self.track.expected_next()
            if expected is not None and ts > expected:
                self.track.counters.gaps += 1
                await self._backfill(ts - 1)
            elif self.track.problems.keys() & {"hole", "backfill"}:
                await self._backfill(ts - 1)  # one try per closed bar to mend an earlier failure
            self.track.add(bar)

    async def _backfill(self, until_ms: int) -> None:
        """Fetch the bars the window lacks up to `until_ms` (the missing tail when the window is whole,
        else the whole window's span) and merge them in."""
        track, step = self.track, self.track.interval_ms
        earliest = until_ms - track.window.capacity * step + 1  # capacity bars opening by until_ms
        expected = track.expected_next()
        whole = expected is not None and not track.problems.keys() & {"hole", "backfill"}
        start = max(expected, earliest) if whole and expected is not None else earliest
        if start > until_ms:
            return
        try:
            candles = await self.rest.klines_async(self.symbol, self.interval, start, until_ms, self.category)
        except MarketError as exc:
            track.counters.backfill_failures += 1
            track.set_problem("backfill", f"REST backfill failed: {exc}")
            return
        track.counters.backfills += 1
        track.merge(candles)
        track.set_problem("backfill", None)


def from_spec(rest: str, options: FeedOptions, outbox: Outbox | None = None) -> BybitFeed:
    """`CATEGORY:SYMBOL:INTERVAL` → a Bybit feed."""
    parts = rest.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"bybit feed {rest!r} is not CATEGORY:SYMBOL:INTERVAL; e.g. bybit:linear:BTCUSDT:1 "
                         f"(category {' | '.join(CATEGORIES)})")
    category, symbol, interval = parts
    return BybitFeed(category, symbol, interval, capacity=options.capacity, settings=options.bybit,
                     outbox=outbox)
