"""A bounded rolling window of closed bars for one symbol: append in time order, keep the last N.

    window = RollingWindow(500)
    window.append(bar)          # None when added, else why not: "duplicate" or "out_of_order"
    candles = window.candles()  # the last ≤ 500 bars, oldest first, as a read-only `Candles`

Bars are `Candles` of one row that have already passed `Candles.validate` (the feeds' decoders and
readers check every invariant there, once); the window only guards time order. A view costs six
array slices, no copy, and stays valid forever: when the buffer is full the kept bars move to a *new*
buffer instead of being shifted in place, so a view handed out earlier (to a consumer still computing
on it) never sees a later bar written under it. Appends are amortised O(1): each bar is copied at
most once more.

Taker-buy volume is kept per bar (NaN where a bar had none); a view carries the column only when every
bar in it has a value, because `Candles` has one such column for the whole series.
"""

from __future__ import annotations

import numpy as np

from market.candles import Candles

COLUMNS = ("open", "high", "low", "close", "volume", "taker_buy_volume")
DUPLICATE, OUT_OF_ORDER = "duplicate", "out_of_order"


class RollingWindow:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a rolling window needs capacity >= 1, got {capacity}")
        self.capacity = capacity
        self._start = self._end = 0
        self._ts, self._values = self._buffers()

    def _buffers(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        size = 2 * self.capacity
        return np.zeros(size, dtype=np.int64), {name: np.full(size, np.nan) for name in COLUMNS}

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def first_ts(self) -> int | None:
        return int(self._ts[self._start]) if len(self) else None

    @property
    def last_ts(self) -> int | None:
        return int(self._ts[self._end - 1]) if len(self) else None

    def append(self, bar: Candles) -> str | None:
        """Add one closed bar after the last; refuse one that is not later, saying why."""
        if len(bar) != 1:
            raise ValueError(f"append takes one bar (a Candles of one row), got {len(bar)} rows")
        ts = int(bar.ts[0])
        last = self.last_ts
        if last is not None and ts <= last:
            return DUPLICATE if ts == last else OUT_OF_ORDER
        if self._end == self._ts.shape[0]:
            self._move_to_new_buffer()
        i = self._end
        self._ts[i] = ts
        for name in COLUMNS:
            column = getattr(bar, name)
            self._values[name][i] = np.nan if column is None else column[0]
        self._end += 1
        if len(self) > self.capacity:
            self._start += 1
        return None

    def _move_to_new_buffer(self) -> None:
        # A fresh buffer, not an in-place shift: views already handed out keep their own memory.
        keep = slice(self._end - self.capacity + 1, self._end)  # room for the bar being appended
        ts, values = self._buffers()
        n = keep.stop - keep.start
        ts[:n] = self._ts[keep]
        for name in COLUMNS:
            values[name][:n] = self._values[name][keep]
        self._ts, self._values, self._start, self._end = ts, values, 0, n

    def candles(self) -> Candles:
        """The bars in the window, oldest first, as read-only arrays."""
        span = slice(self._start, self._end)
        ts = _read_only(self._ts[span])
        cols = {name: _read_only(self._values[name][span]) for name in COLUMNS}
        taker = cols.pop("taker_buy_volume")
        return Candles(ts, **cols, taker_buy_volume=None if np.isnan(taker).any() else taker)

    def merge(self, candles: Candles) -> np.ndarray:
        """Add bars from anywhere in time (a backfill filling holes); a bar the window already holds
        wins over a new one with the same timestamp. Keeps the last `capacity`; returns the
        timestamps that are now in the window and were not before, oldest first."""
        span = slice(self._start, self._end)
        held = self._ts[span]
        unique, first = np.unique(np.concatenate([held, candles.ts]), return_index=True)  # sorted
        kept = slice(max(0, unique.shape[0] - self.capacity), unique.shape[0])
        ts, values = self._buffers()
        n = kept.stop - kept.start
        ts[:n] = unique[kept]
        for name in COLUMNS:
            new = getattr(candles, name)
            both = np.concatenate([self._values[name][span], np.full(len(candles), np.nan) if new is None
                                   else new])
            values[name][:n] = both[first[kept]]
        added = ts[:n][~np.isin(ts[:n], held)]
        self._ts, self._values, self._start, self._end = ts, values, 0, n
        return added


def _read_only(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view
