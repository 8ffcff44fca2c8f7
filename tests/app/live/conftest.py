"""Helpers for the live tests: the real server (uvicorn on a free loopback port, run in the test's own
event loop beside the test exchange of tests/market/feeds/exchange.py), settings pointing it at that
exchange, and clients reading its SSE streams.

The feeds fill their window over REST with what has closed by the real clock, so the exchange's history
is moved to end a little before now (`recent`: by a whole number of minutes, or of days for a real file).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import uvicorn

from app.main import create_app
from app.settings import Settings
from market.candles import Candles
from tests.market.feeds.exchange import Exchange

HOST = "127.0.0.1"
MINUTE_MS, DAY_MS = 60_000, 86_400_000
SCENARIO_SECONDS = 30.0
T = TypeVar("T")

# A dead connection is found in tenths of a second and reconnected at once (the exchange's FAST timings).
FAST = {"bybit_ping_seconds": 0.05, "bybit_pong_timeout_seconds": 0.3, "bybit_silence_seconds": 5.0,
        "bybit_backoff_seconds": 0.02, "bybit_max_backoff_seconds": 0.1}


def run(scenario: Awaitable[T], seconds: float = SCENARIO_SECONDS) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario, seconds)
    return asyncio.run(bounded())


def recent(candles: Candles, last: int, step_ms: int, unit_ms: int = MINUTE_MS) -> Candles:
    """The candles moved by a whole number of `unit_ms` so that bar `last` has closed a little before now
    (a day keeps every time-of-day feature; the values are untouched)."""
    now = int(time.time() * 1000)
    shift = (now - step_ms - int(candles.ts[last])) // unit_ms * unit_ms
    return replace(candles, ts=candles.ts + shift)


def settings(store: Path, exchange: Exchange | None = None, feeds: tuple[str, ...] = (),
             **overrides: Any) -> Settings:
    base = {} if exchange is None else {"bybit_ws_url": f"ws://{HOST}:{exchange.port}/v5/public",
                                        "bybit_rest_url": f"http://{HOST}:{exchange.port}"}
    return Settings(models_dir=store, feeds=list(feeds), log_level="warning", access_log=False,
                    **{**FAST, **base, **overrides})


@asynccontextmanager
async def serving(s: Settings, send_buffer: int | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The real server on a free port for the block; a client pointed at it. `send_buffer` fixes the
    kernel's send buffer of its connections (bytes; loopback otherwise grows it to megabytes), so that a
    client that stops reading holds the server back after a few events rather than thousands."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:  # accepted connections inherit it
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    listener.bind((HOST, 0))
    server = uvicorn.Server(uvicorn.Config(create_app(s), log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            raise AssertionError(f"the server did not start: {task.exception()!r}")
        await asyncio.sleep(0.01)
    port = listener.getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10.0) as client:
            yield client
    finally:
        server.should_exit = True
        await task
        listener.close()


@dataclass
class Stream:
    """One SSE stream's events as they arrive: bars (id, body) and the named events."""

    bars: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    named: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def ids(self) -> list[int]:
        return [i for i, _ in self.bars]

    async def until(self, wanted: Callable[[Stream], bool], seconds: float = 10.0) -> Stream:
        async with asyncio.timeout(seconds):
            while not wanted(self):
                assert self.task is None or not self.task.done() or wanted(self), "the stream ended"
                await asyncio.sleep(0.01)
        return self

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def listen(client: httpx.AsyncClient, symbol: str, headers: dict[str, str] | None = None) -> Stream:
    """Read /symbols/{symbol}/events in the background into a Stream; returns once the server has
    subscribed it (so no event published afterwards is missed)."""
    stream = Stream()
    before = (await symbol_state(client, symbol, lambda x: True))["subscribers"]

    async def read() -> None:
        async with client.stream("GET", f"/symbols/{symbol}/events", headers=headers) as r:
            assert r.status_code == 200, await r.aread()
            fields: dict[str, str] = {}
            async for line in r.aiter_lines():
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                    continue
                if "data" in fields:
                    body = json.loads(fields["data"])
                    if "event" in fields:
                        stream.named.append((fields["event"], body))
                    else:
                        stream.bars.append((int(fields["id"]), body))
                fields = {}

    stream.task = asyncio.create_task(read())
    await symbol_state(client, symbol, lambda x: x["subscribers"] > before or stream.task.done())
    return stream


def consecutive(ids: list[int], step_ms: int = MINUTE_MS) -> bool:
    return bool(ids) and np.array_equal(np.diff(ids), np.full(len(ids) - 1, step_ms))


async def symbol_state(client: httpx.AsyncClient, symbol: str,
                       wanted: Callable[[dict[str, Any]], bool], seconds: float = 10.0) -> dict[str, Any]:
    """Poll /symbols until the symbol's summary satisfies `wanted`; return it."""
    async with asyncio.timeout(seconds):
        while True:
            listing = (await client.get("/symbols")).json()["symbols"]
            found = next(s for s in listing if s["symbol"] == symbol)
            if wanted(found):
                return found
            await asyncio.sleep(0.02)
