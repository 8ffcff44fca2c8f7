"""Candles and order books: the two shapes of market data every other module speaks.

`Candles` holds a time series as parallel numpy arrays (timestamps in epoch milliseconds, oldest
first); `Book` holds one order-book snapshot. Both check their invariants when built with
`validate()`, so a bad series is refused with the field and the row that broke it.
"""

from __future__ import annotations

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
        """Raise CandleError naming the first broken invariant; return self when all hold."""
        n = len(self)
        arrays = {"open": self.open, "high": self.high, "low": self.low, "close": self.close,
                  "volume": self.volume}
        if self.taker_buy_volume is not None:
            arrays["taker_buy_volume"] = self.taker_buy_volume
        for name, values in arrays.items():
            if values.shape != (n,):
                raise CandleError(name, f"has {values.shape[0]} values for {n} timestamps")
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise CandleError(name, f"row {bad[0]} is not a finite number")
        for name in ("open", "high", "low", "close"):
            bad = np.flatnonzero(arrays[name] <= 0)
            if bad.size:
                raise CandleError(name, f"row {bad[0]} is {arrays[name][bad[0]]}; prices must be > 0")
        _first_bad("high", self.high < np.maximum(self.open, self.close),
                   "is below max(open, close)")
        _first_bad("low", self.low > np.minimum(self.open, self.close), "is above min(open, close)")
        _first_bad("volume", self.volume < 0, "is negative")
        if self.taker_buy_volume is not None:
            _first_bad("taker_buy_volume", self.taker_buy_volume < 0, "is negative")
        _first_bad("ts", np.diff(self.ts) <= 0, "is not after the previous timestamp", offset=1)
        return self


def _first_bad(name: str, mask: np.ndarray, problem: str, offset: int = 0) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        raise CandleError(name, f"row {bad[0] + offset} {problem}")


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
        bid, ask = self.bids[0, 0], self.asks[0, 0]
        return float((ask - bid) / ((ask + bid) / 2) * 1e4)

    @property
    def imbalance(self) -> float:
        """Top-of-book size imbalance in [-1, 1]: +1 all bid, -1 all ask."""
        b, a = self.bids[0, 1], self.asks[0, 1]
        return float((b - a) / (b + a)) if b + a > 0 else 0.0
