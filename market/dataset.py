"""From a market series and a target to time-ordered train / validation / test splits of (features, y).

Every window of `features.WINDOW` bars ending at bar t whose target is known (bars t+1 .. t+h exist, h
the target's horizon) becomes one row. The target fits what it needs (e.g. the direction's flat band)
on the training rows only. Splits follow time, with a gap of at least window + horizon rows between
them: the last training label reads bars up to t+h, the first validation window starts at its end
t' − window + 1, so with t' ≥ t + window + horizon no bar behind a label of one split is seen by the
features of the next (and the same between validation and test).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from market import features, regime
from market.candles import Candles
from market.targets import Target, Truth


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
    expected_return: np.ndarray | None = None  # (n,) E[r_{t+1} | information at t]
    sigma: np.ndarray | None = None  # (n,) standard deviation of r_{t+1} given information at t
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
                # The order-flow features read it: serving flags windows without it (`estimated`).
                "taker_volume": c.taker_buy_volume is not None, **self.detail}


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (n, F) float32
    y: np.ndarray  # (n,) float32 target values, or int64 class indices
    signals: np.ndarray  # (n, 5) float64
    ends: np.ndarray  # (n,) index of each window's last bar in the source
    true_regime: np.ndarray | None
    truth: Truth  # what a simulator knows at each end (empty for real data)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    spec: features.FeatureSpec
    thresholds: regime.Thresholds
    target: Target  # fitted on the training split
    candles: Candles  # the series the rows come from (classical baselines read it at each split's ends)

    def oracle(self, split: Split) -> np.ndarray | None:
        """The target's best achievable prediction on the split, where the simulator determines it."""
        return self.target.oracle(self.candles, split.ends, split.truth)


def build(
    source: Source,
    target: Target,
    fractions: tuple[float, float] = (0.70, 0.15),
    chunk: int = 65_536,
) -> Dataset:
    """Rows for every full window with a known target, split by time (train, validation, test)."""
    c = source.candles
    w, h = features.WINDOW, target.horizon
    ends = np.arange(w - 1, len(c) - h)
    n = ends.shape[0]
    gap = w + h
    if n < 10 * gap:
        raise ValueError(f"{len(c)} candles give {n} windows for horizon {h}; "
                         f"need at least {10 * gap + w + h} candles")
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

    n_train = int(n * fractions[0])
    n_val = int(n * fractions[1])
    bounds = [(0, n_train), (n_train + gap, n_train + n_val), (n_train + n_val + gap, n)]
    target = target.fit(c, ends[:n_train])
    y = target.y(c, ends)

    def split(lo: int, hi: int) -> Split:
        e = ends[lo:hi]
        truth = lambda a: None if a is None else a[e]  # noqa: E731
        return Split(x[lo:hi], y[lo:hi], signals[lo:hi], e, truth(source.true_regime),
                     Truth(truth(source.expected_return), truth(source.sigma)))

    train, val, test = (split(lo, hi) for lo, hi in bounds)
    return Dataset(train, val, test, spec, regime.calibrate(train.signals), target, c)
