"""From a market series to time-ordered train / validation / test splits of (features, target).

Every window of `features.WINDOW` bars ending at bar t becomes one row; its regression target is the
next bar's log return, its class target down / flat / up with a flat band fitted on the training
split (a third of training rows inside it). Splits follow time, with a gap of one window between
them so no bar feeds two splits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from market import features, regime
from market.candles import Candles

CLASSES: tuple[str, ...] = ("down", "flat", "up")


@dataclass(frozen=True)
class Source:
    """A market series and what is known about it. Truth fields are None for real data."""

    kind: str  # "synthetic" | "csv" | "bybit"
    candles: Candles
    symbol: str = ""
    interval: str = ""
    book_spread_bps: np.ndarray | None = None  # (n,) per bar, when a book is known
    book_imbalance: np.ndarray | None = None
    true_regime: np.ndarray | None = None  # (n,) int8
    expected_return: np.ndarray | None = None  # (n,) E[r_{t+1}]
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def has_book(self) -> bool:
        return self.book_spread_bps is not None

    def describe(self) -> dict[str, object]:
        c = self.candles
        digest = hashlib.sha256()
        for a in (c.ts, c.open, c.high, c.low, c.close, c.volume):
            digest.update(np.ascontiguousarray(a).tobytes())
        return {"kind": self.kind, "symbol": self.symbol, "interval": self.interval, "rows": len(c),
                "first_ts": int(c.ts[0]), "last_ts": int(c.ts[-1]), "sha256": digest.hexdigest(),
                **self.detail}


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (n, F) float32
    y: np.ndarray  # (n,) float32, next-bar log return
    signals: np.ndarray  # (n, 5) float64
    ends: np.ndarray  # (n,) index of each window's last bar in the source
    true_regime: np.ndarray | None
    expected_return: np.ndarray | None

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    spec: features.FeatureSpec
    thresholds: regime.Thresholds
    flat_band: float  # |next return| below this is "flat"

    def labels(self, split: Split) -> np.ndarray:
        return class_labels(split.y, self.flat_band)


def class_labels(y: np.ndarray, band: float) -> np.ndarray:
    """0 = down, 1 = flat, 2 = up."""
    return np.where(y > band, 2, np.where(y < -band, 0, 1)).astype(np.int64)


def build(
    source: Source,
    fractions: tuple[float, float] = (0.70, 0.15),
    chunk: int = 65_536,
) -> Dataset:
    """Rows for every full window with a known next bar, split by time (train, validation, test)."""
    c = source.candles
    w = features.WINDOW
    ends = np.arange(w - 1, len(c) - 1)
    n = ends.shape[0]
    if n < 10 * w:
        raise ValueError(f"{len(c)} candles give {n} windows; need at least {10 * w + w} candles")
    spec = features.FeatureSpec(use_book=source.has_book)
    parts = [
        features.compute(
            features.sliding_windows(c, ends[i:i + chunk], source.book_spread_bps, source.book_imbalance),
            use_book=spec.use_book,
        )
        for i in range(0, n, chunk)
    ]
    x = np.concatenate([p.x for p in parts])
    signals = np.concatenate([p.signals for p in parts])
    log_close = np.log(c.close)
    y = (log_close[ends + 1] - log_close[ends]).astype(np.float32)

    n_train = int(n * fractions[0])
    n_val = int(n * fractions[1])
    bounds = [(0, n_train), (n_train + w, n_train + n_val), (n_train + n_val + w, n)]

    def split(lo: int, hi: int) -> Split:
        e = ends[lo:hi]
        truth = lambda a: None if a is None else a[e]  # noqa: E731
        return Split(x[lo:hi], y[lo:hi], signals[lo:hi], e, truth(source.true_regime),
                     truth(source.expected_return))

    train, val, test = (split(lo, hi) for lo, hi in bounds)
    thresholds = regime.calibrate(train.signals)
    flat_band = float(np.quantile(np.abs(train.y), 1.0 / 3.0))
    return Dataset(train, val, test, spec, thresholds, flat_band)
