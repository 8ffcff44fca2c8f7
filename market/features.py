"""The one feature pipeline: a window of candles (plus an optional book) → feature vector and signals.

Training and serving both call `compute` (the service through `features_for`), so a window always
yields the same vector wherever it is evaluated. The core works on a batch of equal-length windows
(arrays shaped (B, W), oldest bar first); a single window is a batch of one.

Per window, with the last bar as "now":
  * lags 0..7 of the one-bar log return, the (high − low) / close range, the log volume change and
    the 5-bar log momentum (the research write-up's features);
  * spread (bps) and top-of-book imbalance from the book when there is one, otherwise estimated from
    the candles: Corwin-Schultz high-low spread averaged over the window, and the taker-buy share
    (2·buy/volume − 1) of the last bar or, without taker volume, its close location;
  * the regime signals: volatility (mean range of the last 12 bars, bps), volatility shift (last 8
    bars' range over the whole window's), trend strength (Kaufman efficiency ratio over the window).
Which of spread and imbalance were estimated is returned per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from market.candles import Book, Candles

FEATURE_VERSION = 1
WINDOW = 48
N_LAGS = 8
MOMENTUM_BARS = 5
SHORT_VOL_BARS = 12
SHIFT_BARS = 8
_LAGGED = ("ret", "range", "dvol", "mom5")
SIGNAL_NAMES: tuple[str, ...] = ("volatility", "spread_bps", "imbalance", "trend", "vol_shift")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{name}_lag{k}" for name in _LAGGED for k in range(N_LAGS)),
    "volatility_long", *SIGNAL_NAMES,
)
_CS_DENOMINATOR = 3.0 - 2.0 * np.sqrt(2.0)


@dataclass(frozen=True)
class Windows:
    """B windows of W bars each, oldest bar first. Missing taker volume or book is NaN for that row."""

    open: np.ndarray  # (B, W)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    taker_buy_volume: np.ndarray  # (B, W); a row of NaN when the window has none
    book_spread_bps: np.ndarray  # (B,); NaN when the window has no book
    book_imbalance: np.ndarray  # (B,)

    def __len__(self) -> int:
        return int(self.close.shape[0])


@dataclass(frozen=True)
class Features:
    """The pipeline's output for B windows."""

    x: np.ndarray  # (B, len(FEATURE_NAMES)) float32, the model input
    signals: np.ndarray  # (B, len(SIGNAL_NAMES)) float64, what the regime detector reads
    spread_estimated: np.ndarray  # (B,) bool
    imbalance_estimated: np.ndarray  # (B,) bool

    def estimated(self, row: int) -> list[str]:
        names = []
        if self.spread_estimated[row]:
            names.append("spread_bps")
        if self.imbalance_estimated[row]:
            names.append("imbalance")
        return names


@dataclass(frozen=True)
class FeatureSpec:
    """What a family was trained on; stored in the manifest so serving computes the same thing."""

    window: int = WINDOW
    version: int = FEATURE_VERSION
    names: tuple[str, ...] = FEATURE_NAMES
    use_book: bool = True  # False: the family was trained on candles alone, so books are ignored

    def to_dict(self) -> dict[str, object]:
        return {"window": self.window, "version": self.version, "names": list(self.names),
                "use_book": self.use_book}


def window_of(candles: Candles, book: Book | None = None) -> Windows:
    """The last WINDOW bars of `candles` (and the book, if any) as a batch of one."""
    if len(candles) < WINDOW:
        raise ValueError(f"a window needs at least {WINDOW} candles, got {len(candles)}")
    last = candles[-WINDOW:]
    tbv = last.taker_buy_volume if last.taker_buy_volume is not None else np.full(WINDOW, np.nan)
    spread, imbalance = (np.nan, np.nan) if book is None else (book.spread_bps, book.imbalance)
    row = lambda a: np.asarray(a, dtype=np.float64)[None, :]  # noqa: E731
    return Windows(row(last.open), row(last.high), row(last.low), row(last.close), row(last.volume),
                   row(tbv), np.array([spread]), np.array([imbalance]))


def stack(windows: list[Windows]) -> Windows:
    """Concatenate batches (e.g. one per request item) into one batch."""
    cat = lambda name: np.concatenate([getattr(w, name) for w in windows])  # noqa: E731
    return Windows(*(cat(name) for name in Windows.__dataclass_fields__))


def sliding_windows(
    candles: Candles,
    ends: np.ndarray,
    book_spread_bps: np.ndarray | None = None,
    book_imbalance: np.ndarray | None = None,
) -> Windows:
    """Windows of WINDOW bars ending (inclusive) at each index in `ends`; book values are per bar."""
    idx = np.asarray(ends)[:, None] + np.arange(-WINDOW + 1, 1)[None, :]
    if idx.size and idx.min() < 0:
        raise ValueError(f"window end {int(np.min(ends))} leaves fewer than {WINDOW} bars before it")
    tbv = candles.taker_buy_volume
    nan = np.full(len(ends), np.nan)
    return Windows(
        candles.open[idx], candles.high[idx], candles.low[idx], candles.close[idx], candles.volume[idx],
        np.full(idx.shape, np.nan) if tbv is None else tbv[idx],
        nan if book_spread_bps is None else book_spread_bps[ends],
        nan if book_imbalance is None else book_imbalance[ends],
    )


def compute(w: Windows, use_book: bool = True) -> Features:
    """The feature vector and regime signals of every window in the batch."""
    h, lo, c, v = w.high, w.low, w.close, w.volume
    log_c = np.log(c)
    ret = np.diff(log_c, axis=1)  # (B, W-1)
    rng = (h - lo) / c  # (B, W)
    scale = np.mean(v, axis=1, keepdims=True) * 1e-6 + 1e-12
    dvol = np.clip(np.diff(np.log(v + scale), axis=1), -10.0, 10.0)
    mom = log_c[:, MOMENTUM_BARS:] - log_c[:, :-MOMENTUM_BARS]

    lags = [np.flip(a[:, -N_LAGS:], axis=1) for a in (ret, rng, dvol, mom)]  # lag 0 first

    volatility = rng[:, -SHORT_VOL_BARS:].mean(axis=1)
    volatility_long = rng.mean(axis=1)
    vol_shift = rng[:, -SHIFT_BARS:].mean(axis=1) / np.maximum(volatility_long, 1e-12)
    path = np.abs(ret).sum(axis=1)
    trend = np.abs(log_c[:, -1] - log_c[:, 0]) / np.maximum(path, 1e-12)

    book_spread = w.book_spread_bps if use_book else np.full(len(w), np.nan)
    book_imb = w.book_imbalance if use_book else np.full(len(w), np.nan)
    spread_estimated = ~np.isfinite(book_spread)
    imbalance_estimated = ~np.isfinite(book_imb)
    spread = np.where(spread_estimated, _corwin_schultz_bps(h, lo), book_spread)
    imbalance = np.where(imbalance_estimated, _flow_imbalance(w), book_imb)

    signals = np.stack([volatility * 1e4, spread, imbalance, trend, vol_shift], axis=1)
    x = np.concatenate([*lags, volatility_long[:, None] * 1e4, signals], axis=1)
    return Features(x.astype(np.float32), signals, spread_estimated, imbalance_estimated)


def _corwin_schultz_bps(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Corwin & Schultz (2012) two-bar high-low spread estimate, negatives set to 0, window mean, bps."""
    hl = np.log(high / low) ** 2
    beta = hl[:, 1:] + hl[:, :-1]
    gamma = np.log(np.maximum(high[:, 1:], high[:, :-1]) / np.minimum(low[:, 1:], low[:, :-1])) ** 2
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _CS_DENOMINATOR - np.sqrt(gamma / _CS_DENOMINATOR)
    spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return np.maximum(spread, 0.0).mean(axis=1) * 1e4


def _flow_imbalance(w: Windows) -> np.ndarray:
    """Taker-buy share of the last bar mapped to [-1, 1]; its close location when there is no taker volume."""
    v, tbv = w.volume[:, -1], w.taker_buy_volume[:, -1]
    share = np.where(v > 0, 2.0 * tbv / np.where(v > 0, v, 1.0) - 1.0, 0.0)
    h, lo, c = w.high[:, -1], w.low[:, -1], w.close[:, -1]
    span = h - lo
    location = np.where(span > 0, ((c - lo) - (h - c)) / np.where(span > 0, span, 1.0), 0.0)
    return np.clip(np.where(np.isfinite(tbv), share, location), -1.0, 1.0)
