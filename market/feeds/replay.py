"""Replay a candle CSV as a live feed, at a chosen speed: for demos, tests and dry runs.

    replay:PATH            one bar per second
    replay:PATH:10         10 bars per second
    replay:PATH:60x        60 × real time: each bar waits its file interval / 60 (a 1-minute file
                           gives a bar a second; a hole in the file waits as long as it lasted / 60)
    replay:PATH:max        as fast as the consumer takes them

The file is read with `market.csvfile.read_candles` (every layout it knows; a bad file is refused at
construction, naming the line). As the Bybit feed fills its window over REST before streaming, the
replay takes the first `warmup` bars (default: the window's capacity) as history, with no events,
then hands out every later bar as a `BarClosed` at the chosen pace, and stops at the end of the file
("end of file" as the stopped state's reason). A file's own holes make the symbol degraded while they
are in the window, as a live hole would. A replay never drops a bar: when the consumer is behind it
waits for room in the outbox instead of outrunning it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from market.csvfile import read_candles
from market.feeds.base import DEFAULT_CAPACITY, Feed
from market.feeds.outbox import Outbox

if TYPE_CHECKING:
    from market.feeds import FeedOptions

DEFAULT_SPEED = "1"
_SPEED = re.compile(r"(?P<value>\d+(\.\d+)?)(?P<realtime>x?)|max")


@dataclass(frozen=True)
class Speed:
    """Bars per second, or a multiple of real time; `None` value: no pacing."""

    bars_per_second: float | None = 1.0
    realtime: float | None = None

    @classmethod
    def parse(cls, text: str) -> Speed:
        match = _SPEED.fullmatch(text.strip())
        value = float(match["value"]) if match and match["value"] else None
        if not match or (value is not None and value <= 0):
            raise ValueError(f"replay speed {text!r} is not N (bars per second), Nx (times real time) or "
                             "max; e.g. replay:btc.csv:10 or replay:btc.csv:60x")
        if value is None:
            return cls(None, None)
        return cls(None, value) if match["realtime"] else cls(value, None)

    def delay(self, step_ms: int) -> float:
        """Seconds between two bars `step_ms` apart in the file."""
        if self.realtime is not None:
            return step_ms / 1000 / self.realtime
        return 0.0 if self.bars_per_second is None else 1 / self.bars_per_second

    def __str__(self) -> str:
        if self.realtime is not None:
            return f"{self.realtime:g}x"
        return "max" if self.bars_per_second is None else f"{self.bars_per_second:g}"


class ReplayFeed(Feed):
    kind = "replay"

    def __init__(self, path: str | Path, speed: Speed | None = None, *, capacity: int = DEFAULT_CAPACITY,
                 warmup: int | None = None, outbox: Outbox | None = None) -> None:
        loaded = read_candles(path)
        self.candles = loaded.candles
        self.speed = speed or Speed.parse(DEFAULT_SPEED)
        step = int(np.median(np.diff(self.candles.ts))) if len(self.candles) > 1 else 0
        self.warmup = min(capacity if warmup is None else warmup, len(self.candles))
        symbol = loaded.symbol or Path(path).stem
        super().__init__(f"replay:{path}:{self.speed}", symbol, loaded.interval, step,
                         lambda ts: ts + step, capacity=capacity, outbox=outbox)
        self.cadence = self.speed.delay(step)

    async def run(self) -> None:
        loop, candles, track = asyncio.get_running_loop(), self.candles, self.track
        await self.outbox.room(2)
        if self.warmup:
            track.merge(candles[: self.warmup])
        track.set_connected(True)
        due = loop.time()
        for i in range(self.warmup, len(candles)):
            if i > self.warmup:
                due += self.speed.delay(int(candles.ts[i] - candles.ts[i - 1]))
            await asyncio.sleep(max(0.0, due - loop.time()))  # also yields at max speed
            await self.outbox.room(2)  # the bar and the state change it may cause
            track.add(candles[i:i + 1])
        await self.outbox.room()
        track.stop(f"end of file: {len(candles) - self.warmup} bars replayed after {self.warmup} of history")


def from_spec(rest: str, options: FeedOptions, outbox: Outbox | None = None) -> ReplayFeed:
    """`PATH[:speed]` → a replay feed (a path may itself hold `:`; the file that exists decides)."""
    head, _, tail = rest.rpartition(":")
    if head and Path(head).is_file():
        path, speed = head, Speed.parse(tail)
    elif rest and Path(rest).is_file():
        path, speed = rest, Speed.parse(DEFAULT_SPEED)
    else:
        raise ValueError(f"replay file {(head or rest)!r} does not exist; give a candle CSV: "
                         "replay:PATH[:speed], e.g. replay:data/btc_1h.csv:10")
    return ReplayFeed(path, speed, capacity=options.capacity, outbox=outbox)
