"""One followed symbol inside a feed: its rolling window, latest book, state and counters, and the
events that changes to them produce. Every feed keeps its symbol in a `SymbolTrack`, so the rules
below hold for all of them:

  * bars reach the consumer in strictly increasing time: a duplicate or earlier bar is dropped and
    counted, and bars merged into the past (a backfill filling a hole) update the window without an
    event; the first fill of an empty window (the warm-up history) produces no events either;
  * the window is checked for holes after every change, against the feed's `next_open` (the open of
    the bar after a given one); a hole makes the symbol degraded until it is filled or leaves the window;
  * the state is derived, never set by hand: stopped, else degraded while any problem is recorded
    (a rejected subscription, a failed backfill, a hole...), else connecting while the source is not
    connected, else live. Each change is one `StateChanged` event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np

from market.candles import Book, Candles
from market.feeds.events import BarClosed, Counters, FeedState, StateChanged, SymbolStatus
from market.feeds.outbox import Outbox
from market.rolling import RollingWindow


class SymbolTrack:
    def __init__(self, spec: str, symbol: str, interval: str, interval_ms: int, capacity: int,
                 next_open: Callable[[int], int], outbox: Outbox, book_max_age: float = 10.0) -> None:
        self.spec, self.symbol, self.interval, self.interval_ms = spec, symbol, interval, interval_ms
        self.window = RollingWindow(capacity)
        self.counters = Counters()
        self.next_open, self.outbox, self.book_max_age = next_open, outbox, book_max_age
        self.state = FeedState("connecting", "not started")
        self.problems: dict[str, str] = {}
        self.connected, self.connection_note, self.stopped = False, "not started", False
        self._book: Book | None = None
        self._book_at = 0.0  # time.monotonic() when the book arrived
        self._emitted_upto: int | None = None  # newest bar time handed to the consumer
        self.last_drop = ""

    # -- state ---------------------------------------------------------------------------------------

    def set_connected(self, connected: bool, note: str = "") -> None:
        self.connected, self.connection_note = connected, note
        self._publish()

    def set_problem(self, key: str, text: str | None) -> None:
        if text is None:
            self.problems.pop(key, None)
        else:
            self.problems[key] = text
        self._publish()

    def stop(self, reason: str) -> None:
        self.stopped, self.connection_note = True, reason
        self._publish()

    def _publish(self) -> None:
        if self.stopped:
            state = FeedState("stopped", self.connection_note)
        elif self.problems:
            notes = [*self.problems.values(), *([] if self.connected else [self.connection_note])]
            state = FeedState("degraded", "; ".join(n for n in notes if n))
        elif not self.connected:
            state = FeedState("connecting", self.connection_note)
        else:
            state = FeedState("live")
        if (state.status, state.reason) != (self.state.status, self.state.reason):
            self.state = state
            self.outbox.put(StateChanged(self.symbol, state))

    # -- data ----------------------------------------------------------------------------------------

    def drop(self, reason: str, detail: str = "") -> None:
        self.counters.drop(reason)
        self.last_drop = f"{reason}: {detail}" if detail else reason

    def expected_next(self) -> int | None:
        last = self.window.last_ts
        return None if last is None else self.next_open(last)

    def add(self, bar: Candles, backfilled: bool = False) -> bool:
        """Append one validated closed bar and hand it to the consumer; False if it was dropped."""
        refused = self.window.append(bar)
        if refused:
            self.drop(refused, f"bar at {iso(int(bar.ts[0]))}")
            return False
        self._emit(bar, backfilled)
        self._check_holes()
        return True

    def merge(self, candles: Candles) -> int:
        """Merge validated bars (a backfill) into the window; hand the consumer those newer than any
        it has seen, in order, each with the window as it stood at that bar. The first fill of a
        symbol is history and hands out nothing."""
        held = self.window.candles()
        added = self.window.merge(candles)
        if self._emitted_upto is None:
            self._emitted_upto = self.window.last_ts
        else:
            fresh = candles.ts[np.isin(candles.ts, added) & (candles.ts > self._emitted_upto)]
            if fresh.size:
                union = RollingWindow(len(held) + len(candles))
                union.merge(held)
                union.merge(candles)
                everything, capacity = union.candles(), self.window.capacity
                for ts in fresh.tolist():  # oldest first, so the events are in order
                    end = int(np.searchsorted(everything.ts, ts, side="right"))
                    self._emit(everything[end - 1:end], True, everything[max(0, end - capacity):end])
        self._check_holes()
        return int(added.shape[0])

    def _emit(self, bar: Candles, backfilled: bool, window: Candles | None = None) -> None:
        self._emitted_upto = int(bar.ts[0])
        self.counters.bars += 1
        self.counters.backfilled += int(backfilled)
        self.outbox.put(BarClosed(self.symbol, bar, self.window.candles() if window is None else window,
                                  self.fresh_book(), backfilled, time.time()))

    def missing(self) -> tuple[int, int]:
        """(bars missing inside the window, open time of the last bar before the first hole)."""
        ts = self.window.candles().ts
        if ts.shape[0] < 2:
            return 0, 0
        expected = ts[:-1] + self.interval_ms
        if not np.array_equal(expected, ts[1:]):  # a hole, or not a fixed step (months): exact check
            expected = np.array([self.next_open(int(t)) for t in ts[:-1]], dtype=np.int64)
        holes = np.flatnonzero(ts[1:] != expected)
        if not holes.size:
            return 0, 0
        bars = np.rint((ts[1:][holes] - expected[holes]) / max(self.interval_ms, 1))
        return int(np.maximum(bars, 1).sum()), int(ts[holes[0]])

    def _check_holes(self) -> None:
        count, after = self.missing()
        self.set_problem("hole", f"the window misses {count} bar(s), the first after {iso(after)}"
                         if count else None)

    # -- book ----------------------------------------------------------------------------------------

    def set_book(self, book: Book) -> None:
        self._book, self._book_at = book, time.monotonic()

    def fresh_book(self) -> Book | None:
        if self._book is None or time.monotonic() - self._book_at > self.book_max_age:
            return None
        return self._book

    def status(self) -> SymbolStatus:
        return SymbolStatus(self.spec, self.symbol, self.interval, self.interval_ms, self.state,
                            self.counters.copy(), self.outbox.dropped, len(self.window),
                            self.window.last_ts, self._book, self.last_drop)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
