"""Live feeds: a source of closed bars (and the latest book) per symbol, for the service to follow.

    feed = open_feed("replay:data/eth_5m.csv:10")         # a candle CSV, 10 bars per second
    async with feed:
        async for event in feed: ...                      # BarClosed / StateChanged (market.feeds.events)

Specs, one symbol each:
    replay:PATH[:SPEED]              SPEED: N bars per second (default 1), Nx times real time, or max

A kind of feed is one module (market/feeds/replay.py) and one line in `KINDS`. The parts
every feed shares: `events` (what a consumer receives), `outbox` (the bounded queue to it), `track`
(one symbol's window, book, state and counters), `base` (the task around `run()`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from market.feeds import replay
from market.feeds.base import DEFAULT_CAPACITY, Feed
from market.feeds.events import BarClosed, Counters, FeedEvent, FeedState, StateChanged, SymbolStatus
from market.feeds.outbox import Outbox
from market.feeds.replay import ReplayFeed, Speed

__all__ = ["KINDS", "BarClosed", "Counters", "Feed", "FeedEvent", "FeedOptions", "FeedState", "Outbox",
           "ReplayFeed", "Speed", "StateChanged", "SymbolStatus", "open_feed"]


@dataclass(frozen=True)
class FeedOptions:
    """What the service decides for every feed it opens (its settings map onto these)."""

    capacity: int = DEFAULT_CAPACITY  # bars kept per symbol


KINDS: dict[str, Callable[[str, FeedOptions, Outbox | None], Feed]] = {
    "replay": replay.from_spec,
}


def open_feed(spec: str, options: FeedOptions | None = None, outbox: Outbox | None = None) -> Feed:
    """A feed for `spec`, not yet started; ValueError naming the problem and the expected form."""
    kind, sep, rest = spec.partition(":")
    if kind not in KINDS or not sep:
        raise ValueError(f"unknown feed {spec!r}; use replay:PATH[:speed]")
    return KINDS[kind](rest, options or FeedOptions(), outbox)
