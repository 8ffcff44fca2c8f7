"""What a feed hands its consumer, as plain domain values: closed bars, state changes, counters.

    async for event in feed:
        match event:
            case BarClosed(symbol=s, window=w, book=b):  # w ends with the bar; predict on it
                ...
            case StateChanged(symbol=s, state=st):      # connecting / live / degraded / stopped
                ...

A feed never raises into its consumer for bad input: what it refuses is counted in `Counters.dropped`
by one of the reasons below, and what goes wrong with the source shows in the state's reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from market.candles import Book, Candles
from market.rolling import DUPLICATE, OUT_OF_ORDER

Status = Literal["connecting", "live", "degraded", "stopped"]

# Why an input was dropped (the keys of Counters.dropped).
MALFORMED = "malformed"  # not JSON, not the documented shape, a field of the wrong type
NON_NUMERIC = "non_numeric"  # a price, size or volume that is not a finite number
INVALID_CANDLE = "invalid_candle"  # numbers that break a Candles invariant (high below low, ...)
INVALID_BOOK = "invalid_book"  # a book that breaks a Book invariant (crossed, empty side, ...)
DELTA_BEFORE_SNAPSHOT = "delta_before_snapshot"  # an order-book delta with no snapshot to apply it to
UNKNOWN_TOPIC = "unknown_topic"  # data for a topic this feed did not subscribe to
UNEXPECTED = "unexpected_frame"  # a well-formed frame of a kind the feed does not handle
QUEUE_FULL = "queue_full"  # a closed bar that arrived while the symbol's queue was full (backfilled later)
DROP_REASONS = (MALFORMED, NON_NUMERIC, INVALID_CANDLE, DUPLICATE, OUT_OF_ORDER, INVALID_BOOK,
                DELTA_BEFORE_SNAPSHOT, UNKNOWN_TOPIC, UNEXPECTED, QUEUE_FULL)


@dataclass(frozen=True)
class FeedState:
    status: Status
    reason: str = ""  # why it is not live; "" when live
    since: float = field(default_factory=time.time)  # epoch seconds of the change


@dataclass(frozen=True)
class BarClosed:
    """A closed bar entered the symbol's window. Bars reach the consumer in strictly increasing time."""

    symbol: str
    bar: Candles  # the closed bar: one row, validated
    window: Candles  # the rolling window with this bar last, oldest first; read-only, never changes
    book: Book | None  # the latest top of book if fresher than the feed's limit, else None
    backfilled: bool  # True: recovered over REST after a reconnect or a gap, not pushed live
    received: float  # epoch seconds when the feed took the bar


@dataclass(frozen=True)
class StateChanged:
    symbol: str
    state: FeedState


FeedEvent = BarClosed | StateChanged


@dataclass
class Counters:
    """Running totals for one symbol since the feed started."""

    bars: int = 0  # closed bars handed to the consumer (live or backfilled; not the warm-up history)
    backfilled: int = 0  # of those, recovered over REST
    reconnects: int = 0  # connection attempts after the first
    gaps: int = 0  # times a closed bar arrived later than the next expected one
    backfills: int = 0  # REST backfills answered (warm-up, reconnect, gap, repair)
    backfill_failures: int = 0  # REST backfills that failed after the client's retries
    dropped: dict[str, int] = field(default_factory=dict)  # inputs refused, by reason

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def copy(self) -> Counters:
        return Counters(self.bars, self.backfilled, self.reconnects, self.gaps, self.backfills,
                        self.backfill_failures, dict(self.dropped))


@dataclass(frozen=True)
class SymbolStatus:
    """A snapshot of one followed symbol, for listings and health checks."""

    spec: str  # the feed spec, canonical (bybit:linear:BTCUSDT:1, replay:/path.csv:10)
    symbol: str
    interval: str  # the source's own spelling (Bybit: 1, 5, 60, D; a file: 5m, 1h)
    interval_ms: int  # nominal bar length (a month counts 31 days)
    state: FeedState
    counters: Counters
    events_dropped: int  # events the consumer did not take in time (its outbox overflowed)
    window_bars: int
    last_bar_ts: int | None  # open time (epoch ms) of the newest bar in the window
    book: Book | None  # the latest top of book, however old
    last_drop: str  # the last input refused, with its reason ("" if none)
