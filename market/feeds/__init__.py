"""Live feeds: a source of closed bars (and the latest book) per symbol, for the service to follow.

    feed = open_feed("bybit:linear:BTCUSDT:1")           # Bybit v5 public WebSocket + REST backfill
    feed = open_feed("replay:data/eth_5m.csv:10")         # a candle CSV, 10 bars per second
    async with feed:
        async for event in feed: ...                      # BarClosed / StateChanged (market.feeds.events)

Specs, one symbol each:
    bybit:CATEGORY:SYMBOL:INTERVAL   category linear | spot | inverse; interval a Bybit kline interval
                                     (1 3 5 15 30 60 120 240 360 720 D W M, or 5m, 1h, 1d ...)
    replay:PATH[:SPEED]              SPEED: N bars per second (default 1), Nx times real time, or max

A kind of feed is one module (market/feeds/bybit.py, replay.py) and one line in `KINDS`. The parts
every feed shares: `events` (what a consumer receives), `outbox` (the bounded queue to it), `track`
(one symbol's window, book, state and counters), `base` (the task around `run()`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from market.feeds import bybit, replay
from market.feeds.base import DEFAULT_CAPACITY, Feed
from market.feeds.bybit import BybitFeed, BybitSettings
from market.feeds.events import BarClosed, Counters, FeedEvent, FeedState, StateChanged, SymbolStatus
from market.feeds.outbox import Outbox
from market.feeds.replay import ReplayFeed, Speed

__all__ = ["KINDS", "BarClosed", "BybitFeed", "BybitSettings", "Counters", "Feed", "FeedEvent",
           "FeedOptions", "FeedState", "Outbox", "ReplayFeed", "Speed", "StateChanged", "SymbolStatus",
           "open_feed"]


@dataclass(frozen=True)
class FeedOptions:
    """What the service decides for every feed it opens (its settings map onto these)."""

    capacity: int = DEFAULT_CAPACITY  # bars kept per symbol
    bybit: BybitSettings = field(default_factory=BybitSettings)  # endpoints, ping, backoff, ...


KINDS: dict[str, Callable[[str, FeedOptions, Outbox | None], Feed]] = {
    "bybit": bybit.from_spec,
    "replay": replay.from_spec,
}


def open_feed(spec: str, options: FeedOptions | None = None, outbox: Outbox | None = None) -> Feed:
    """A feed for `spec`, not yet started; ValueError naming the problem and the expected form."""
    kind, sep, rest = spec.partition(":")
    if kind not in KINDS or not sep:
        raise ValueError(f"unknown feed {spec!r}; use bybit:CATEGORY:SYMBOL:INTERVAL "
                         "(e.g. bybit:linear:BTCUSDT:1) or replay:PATH[:speed]")
    return KINDS[kind](rest, options or FeedOptions(), outbox)
