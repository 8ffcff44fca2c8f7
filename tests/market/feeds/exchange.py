"""A small Bybit exchange for tests: the v5 public WebSocket and GET /v5/market/kline on one 127.0.0.1
port, speaking the frames recorded in shared/data/bybit/ (ack, rejection, pong, kline push with
`confirm` false then true, order-book snapshot and delta), so a feed is tested against a real server.

    async with Exchange({"BTCUSDT": candles}, history=100) as exchange:   # bars 0..99 already closed
        feed = BybitFeed("linear", "BTCUSDT", "1", settings=exchange.settings(), clock=exchange.clock)
        await exchange.publish("BTCUSDT", 3)        # the next 3 bars close: pushed, and served by REST
        await exchange.publish("BTCUSDT", 2, push=False)    # closed but never pushed (a missed frame)
        await exchange.disconnect()                # cut every connection without a close frame
        exchange.silence()                         # the current connections answer nothing any more
        exchange.rejected.add("kline.1.NOTASYMBOL") # subscribing to it is refused, as Bybit does

Time is the exchange's own: `clock()` is the close of the last bar it published, and REST serves only
bars closed by then (the server `time` in each body), so tests never wait for a real minute to pass.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from market.candles import Candles
from market.feeds.bybit import BybitSettings

MINUTE_MS = 60_000
DEC_1 = 1_733_011_200_000  # 2024-12-01T00:00:00Z

# Fast timings for tests: a dead connection is found in tenths of a second, not tens of seconds.
FAST = BybitSettings(ping_interval=0.05, pong_timeout=0.3, silence=5.0, open_timeout=2.0, ack_timeout=2.0,
                     backoff=0.02, max_backoff=0.1, stable_after=5.0, rest_retries=0, rest_backoff=0.01,
                     seed=0)


def minute_bars(count: int, first_ts: int = DEC_1, seed: int = 0) -> Candles:
    """`count` plausible 1-minute bars, oldest first, every invariant holding."""
    import numpy as np

    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, count)))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.001, (2, count))) * close
    high, low = np.maximum(open_, close) + wick[0], np.minimum(open_, close) - wick[1]
    volume = rng.uniform(1, 10, count).round(3)
    return Candles.from_arrays(first_ts + MINUTE_MS * np.arange(count), open_.round(4), high.round(4),
                               low.round(4), close.round(4), volume).validate()


class Exchange:
    def __init__(self, series: dict[str, Candles], history: int, interval: str = "1") -> None:
        self.series, self.interval = series, interval  # a whole number of minutes
        self.interval_ms = int(interval) * MINUTE_MS
        self.closed = dict.fromkeys(series, history)  # bars closed so far, per symbol
        self.rejected: set[str] = set()
        self.rest_error: int | None = None  # a retCode every REST answer carries while set
        self.rest_requests: list[dict[str, str]] = []
        self.connections: dict[ServerConnection, set[str]] = {}  # connection → its topics
        self.silenced: set[ServerConnection] = set()
        self.pings = 0
        self._server: Server | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> Exchange:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._rest)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    def settings(self, **overrides: Any) -> BybitSettings:
        base = f"127.0.0.1:{self.port}"
        return replace(FAST, ws_url=f"ws://{base}/v5/public", rest_url=f"http://{base}", **overrides)

    def clock(self) -> float:
        last = max(int(self.series[s].ts[self.closed[s] - 1]) for s in self.series)
        return (last + self.interval_ms) / 1000

    # -- what the tests do ---------------------------------------------------------------------------

    async def publish(self, symbol: str, bars: int = 1, push: bool = True) -> None:
        """Close the next `bars` bars: each pushed as an open candle, then confirmed."""
        for _ in range(bars):
            i = self.closed[symbol]
            self.closed[symbol] = i + 1
            if push:
                row = self.series[symbol][i:i + 1]
                topic = f"kline.{self.interval}.{symbol}"
                await self.push(topic, kline_frame(symbol, row, False, self.interval))
                await self.push(topic, kline_frame(symbol, row, True, self.interval))

    async def push(self, topic: str, frame: dict[str, Any] | str) -> None:
        """Send a frame (or any text) to every connection subscribed to `topic`."""
        text = frame if isinstance(frame, str) else json.dumps(frame)
        for connection, topics in list(self.connections.items()):
            if topic in topics and connection not in self.silenced:
                await connection.send(text)

    async def disconnect(self) -> None:
        """Drop every connection at once, with no close frame, as a network failure does."""
        for connection in list(self.connections):
            connection.transport.abort()
        await asyncio.sleep(0)

    def silence(self) -> None:
        """The connections open now stay open but answer nothing (no pong, no data) from here on."""
        self.silenced.update(self.connections)

    async def subscribed(self, topic: str, timeout: float = 5.0) -> None:
        """Wait until some live connection has subscribed to `topic`."""
        async with asyncio.timeout(timeout):
            while not any(topic in t for c, t in self.connections.items() if c not in self.silenced):
                await asyncio.sleep(0.01)

    # -- the WebSocket -------------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections[connection] = set()
        try:
            async for message in connection:
                if connection not in self.silenced:
                    await self._answer(connection, json.loads(message))
        except Exception:  # a dropped client ends its handler; the tests look at the feed's side
            pass
        finally:
            self.connections.pop(connection, None)

    async def _answer(self, connection: ServerConnection, request: dict[str, Any]) -> None:
        conn_id = f"conn-{id(connection)}"
        if request.get("op") == "ping":
            self.pings += 1
            await connection.send(json.dumps({"success": True, "ret_msg": "pong", "conn_id": conn_id,
                                              "req_id": request.get("req_id", ""), "op": "ping"}))
        elif request.get("op") == "subscribe":
            for topic in request["args"]:
                if topic in self.rejected:  # as recorded: no req_id echoed, the topic in ret_msg
                    answer = {"success": False, "ret_msg": f"error:handler not found,topic:{topic}",
                              "conn_id": conn_id, "req_id": "", "op": "subscribe"}
                else:
                    self.connections[connection].add(topic)
                    answer = {"success": True, "ret_msg": "", "conn_id": conn_id,
                              "req_id": request.get("req_id", ""), "op": "subscribe"}
                await connection.send(json.dumps(answer))

    # -- REST ----------------------------------------------------------------------------------------

    def _rest(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path != "/v5/market/kline":
            return None  # a WebSocket handshake
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.rest_requests.append(q)
        now = int(self.clock() * 1000)
        if self.rest_error is not None:
            body: dict[str, Any] = {"retCode": self.rest_error, "retMsg": "params error", "result": {},
                                    "retExtInfo": {}, "time": now}
        else:
            c = self.series[q["symbol"]][: self.closed[q["symbol"]]]
            start, end, limit = int(q["start"]), int(q["end"]), int(q.get("limit", 200))
            rows = [kline_row(c, i) for i in reversed(range(len(c))) if start <= c.ts[i] <= end][:limit]
            body = {"retCode": 0, "retMsg": "OK", "result": {"symbol": q["symbol"], "category": q["category"],
                                                              "list": rows}, "retExtInfo": {}, "time": now}
        return connection.respond(HTTPStatus.OK, json.dumps(body))


def kline_row(c: Candles, i: int) -> list[str]:
    """A REST `result.list` row: [startTime, open, high, low, close, volume, turnover], all strings."""
    return [str(int(c.ts[i])), *(repr(float(a[i])) for a in (c.open, c.high, c.low, c.close, c.volume)),
            repr(round(float(c.close[i] * c.volume[i]), 4))]


def kline_frame(symbol: str, bar: Candles, confirm: bool, interval: str = "1",
                fields: dict[str, object] | None = None) -> dict[str, Any]:
    """A kline push as Bybit sends it (an open candle shows a close not yet final); `fields` replace
    the candle's own, to make it wrong."""
    start, length = int(bar.ts[0]), int(interval) * MINUTE_MS
    close = float(bar.close[0]) if confirm else float(bar.open[0])
    candle: dict[str, Any] = {
        "start": start, "end": start + length - 1, "interval": interval, "open": repr(float(bar.open[0])),
        "close": repr(close), "high": repr(float(bar.high[0])), "low": repr(float(bar.low[0])),
        "volume": repr(float(bar.volume[0])), "turnover": "1234.5", "confirm": confirm,
        "timestamp": start + length - 5, **(fields or {}),
    }
    return {"topic": f"kline.{interval}.{symbol}", "data": [candle], "ts": start + length - 5,
            "type": "snapshot"}


def book_frame(symbol: str, kind: str, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]],
               u: int, depth: int = 1) -> dict[str, Any]:
    return {"topic": f"orderbook.{depth}.{symbol}", "type": kind, "ts": DEC_1, "cts": DEC_1,
            "data": {"s": symbol, "b": [list(level) for level in bids], "a": [list(level) for level in asks],
                     "u": u, "seq": 1000 + u}}
