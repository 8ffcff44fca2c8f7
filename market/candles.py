"""Candles and order books: the two shapes of market data every other module speaks.

`Candles` holds a time series as parallel numpy arrays (timestamps in epoch milliseconds, oldest
first); `Book` holds one order-book snapshot. Both check their invariants when built with
`validate()`, so a bad series is refused with the field and the row that broke it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from market.errors import BookError, CandleError

FloatArray = np.ndarray


@dataclass(frozen=True)
class Candles:
    """OHLCV bars, oldest first. `taker_buy_volume` is None when the source has no such column."""

    ts: np.ndarray  # (n,) int64, epoch ms, strictly increasing
    open: FloatArray  # (n,) float64
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    taker_buy_volume: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def __getitem__(self, index: slice) -> Candles:
        if not isinstance(index, slice):
            raise TypeError("Candles can only be sliced, e.g. candles[-48:]")
        tbv = None if self.taker_buy_volume is None else self.taker_buy_volume[index]
        return Candles(
            self.ts[index], self.open[index], self.high[index], self.low[index],
            self.close[index], self.volume[index], tbv,
        )

    @classmethod
    def from_arrays(
        cls,
        ts: object,
        open: object,
        high: object,
        low: object,
        close: object,
        volume: object,
        taker_buy_volume: object | None = None,
    ) -> Candles:
        as_f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
        tbv = None if taker_buy_volume is None else as_f(taker_buy_volume)
        return cls(
            np.ascontiguousarray(ts, dtype=np.int64), as_f(open), as_f(high), as_f(low),
            as_f(close), as_f(volume), tbv,
        )

    def validate(self) -> Candles:
        """Raise CandleError naming the first broken invariant and its first row; return self if all hold."""
        n = len(self)
        for name, values in self._columns().items():
            if values.shape != (n,):
                raise CandleError(name, f"has {values.shape[0]} values for {n} timestamps")
        for broken in self.violations():
            row = int(broken.rows[0])
            raise CandleError(broken.field, f"row {row} {broken.problem}; {broken.rule}", row)
        return self

    def violations(self) -> Iterator[Violation]:
        """Every broken invariant with all the rows that break it, in the order `validate` checks them:
        the rules of single values first, then the relations between values.

        The columns must have equal lengths. A series made of several windows laid end to end (the
        service checks a batch at once) breaks `ts` at each window's first row; the caller skips those.
        """
        columns = self._columns()
        names = list(columns)
        block = np.vstack(list(columns.values()))  # (k, n): one numpy call per rule, not one per column
        yield from _broken(names, ~np.isfinite(block), "is not a finite number",
                           "send a finite number (no NaN or Infinity)", relation=False)
        yield from _broken(names[:4], block[:4] <= 0, "is not greater than 0",
                           "prices must be greater than 0", relation=False)
        yield from _broken(names[4:], block[4:] < 0, "is negative",
                           "volumes must be greater than or equal to 0", relation=False)
        yield from _broken(["high"], self.high < np.maximum(self.open, self.close),
                           "is below max(open, close)", "high must be ≥ max(open, close)")
        yield from _broken(["low"], self.low > np.minimum(self.open, self.close),
                           "is above min(open, close)", "low must be ≤ min(open, close)")
        if self.taker_buy_volume is not None:
            above = self.taker_buy_volume > self.volume
            yield from _broken(["taker_buy_volume"], above, "is above the volume",
                               "taker-buy volume is part of the volume, so it must be ≤ volume")
        out_of_order = np.zeros(len(self), dtype=bool)
        out_of_order[1:] = self.ts[1:] <= self.ts[:-1]
        yield from _broken(["ts"], out_of_order, "is not after the previous timestamp",
                           "timestamps must increase strictly, oldest candle first")

    def _columns(self) -> dict[str, FloatArray]:
        arrays = {"open": self.open, "high": self.high, "low": self.low, "close": self.close,
                  "volume": self.volume}
        if self.taker_buy_volume is not None:
            arrays["taker_buy_volume"] = self.taker_buy_volume
        return arrays


@dataclass(frozen=True)
class Violation:
    """One invariant broken at some rows of a series."""

    field: str  # the column, e.g. "high"
    rows: np.ndarray  # (k,) ascending row indices where it breaks
    problem: str  # what is wrong at each row, e.g. "is below max(open, close)"
    rule: str  # the invariant, e.g. "high must be ≥ max(open, close)"
    relation: bool  # between values (high vs open and close, ts vs the previous), not of one value alone


def _broken(names: list[str], mask: np.ndarray, problem: str, rule: str,
            relation: bool = True) -> Iterator[Violation]:
    """The violations of one rule; `mask` is (n,) for one column or (len(names), n) for several."""
    if not mask.any():  # the common case, in one call
        return
    for name, column in zip(names, mask.reshape(len(names), -1), strict=True):
        rows = np.flatnonzero(column)
        if rows.size:
            yield Violation(name, rows, problem, rule, relation)


@dataclass(frozen=True)
class Book:
    """One order-book snapshot, best level first on each side; rows are [price, size]."""

    bids: FloatArray  # (levels, 2) float64
    asks: FloatArray  # (levels, 2) float64
    ts: int | None = field(default=None)

    @classmethod
    def from_levels(cls, bids: object, asks: object, ts: int | None = None) -> Book:
        b = np.asarray(bids, dtype=np.float64).reshape(-1, 2)
        a = np.asarray(asks, dtype=np.float64).reshape(-1, 2)
        # Best first whatever order the source used.
        return cls(b[np.argsort(-b[:, 0], kind="stable")], a[np.argsort(a[:, 0], kind="stable")], ts)

    @classmethod
    def top(cls, bid: float, bid_size: float, ask: float, ask_size: float) -> Book:
        return cls.from_levels([[bid, bid_size]], [[ask, ask_size]])

    def validate(self) -> Book:
        for side, levels in (("bids", self.bids), ("asks", self.asks)):
            if levels.shape[0] == 0:
                raise BookError(side, "is empty; give at least the best level")
            if not np.isfinite(levels).all():
                raise BookError(side, "holds a value that is not a finite number")
            if (levels[:, 0] <= 0).any():
                raise BookError(side, "holds a price that is not > 0")
            if (levels[:, 1] < 0).any():
                raise BookError(side, "holds a negative size")
        if self.bids[0, 0] >= self.asks[0, 0]:
            raise BookError("bids", f"best bid {self.bids[0, 0]} is not below best ask {self.asks[0, 0]}")
        return self

    @property
    def spread_bps(self) -> float:
        return top_signals(*self.bids[0].tolist(), *self.asks[0].tolist())[0]

    @property
    def imbalance(self) -> float:
        """Top-of-book size imbalance in [-1, 1]: +1 all bid, -1 all ask."""
        return top_signals(*self.bids[0].tolist(), *self.asks[0].tolist())[1]


def top_signals(bid: float, bid_size: float, ask: float, ask_size: float) -> tuple[float, float]:
    """The spread in bps of the mid and the size imbalance in [-1, 1] (+1 all bid) of a book's best levels."""
    depth = bid_size + ask_size
    return (ask - bid) / ((ask + bid) / 2) * 1e4, (bid_size - ask_size) / depth if depth > 0 else 0.0
