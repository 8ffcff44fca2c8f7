"""The one feature pipeline: a window of candles (plus an optional book) → feature vector and signals.

Training and serving both call `compute` (the service through `app/windows.py`), so a window always
yields the same vector wherever it is evaluated. The core works on a batch of equal-length windows
(arrays shaped (B, W), oldest bar first); a single window is a batch of one.

Per window, with the last bar as "now" (version 2):
  * lags 0..7 of four per-bar series: the log return; the log range log((high − low) / close); the
    relative log volume log(volume / the window's mean volume), so the level, which does not carry
    across windows or symbols, is removed; and the order flow, the taker-buy share mapped to [-1, 1]
    (2·buy/volume − 1) or, without taker volume, the bar's close location in its range;
  * volatility over three horizons, the components of a HAR model (Corsi 2009): the last bar's log
    range (lag 0 above) and the log of the mean range over the last 5 and 22 bars (a range is a more
    efficient volatility estimate than a squared return of the same bar);
  * the calendar, encoded cyclically (sine and cosine of the time of day and of the day of the week,
    UTC, at the last bar's open time): intraday and weekly seasonality of volume and volatility;
  * the regime signals, also model inputs: volatility (mean range of the last 12 bars, bps), spread
    (bps) and top-of-book imbalance from the book when there is one, otherwise estimated from the
    candles (Corwin-Schultz high-low spread averaged over the window; the last bar's order flow),
    volatility shift (last 8 bars' range over the whole window's) and trend strength (Kaufman
    efficiency ratio over the window).
Which of spread and imbalance were estimated is returned per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from market.candles import Book, Candles

FEATURE_VERSION = 2
WINDOW = 48
N_LAGS = 8
HAR_BARS = (5, 22)  # the short and long averages of a HAR model; the last bar is lag 0
SHORT_VOL_BARS = 12
SHIFT_BARS = 8
RANGE_FLOOR = 1e-6  # a bar with high == low has no log range; 0.01 bp stands in for it
DAY_MS = 86_400_000
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
_LAGGED = ("ret", "logrange", "relvol", "flow")
SIGNAL_NAMES: tuple[str, ...] = ("volatility", "spread_bps", "imbalance", "trend", "vol_shift")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{name}_lag{k}" for name in _LAGGED for k in range(N_LAGS)),
    *(f"logrange_mean{n}" for n in HAR_BARS),
    "tod_sin", "tod_cos", "dow_sin", "dow_cos",
    *SIGNAL_NAMES,
)
_CS_DENOMINATOR = 3.0 - 2.0 * np.sqrt(2.0)


@dataclass(frozen=True)
class Windows:
    """B windows of W bars each, oldest bar first. Missing taker volume or book is NaN for that row."""

    ts: np.ndarray  # (B, W) int64, bar open time in epoch ms
    open: np.ndarray  # (B, W) float64
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

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, rows: np.ndarray | list[int]) -> Features:
        return Features(self.x[rows], self.signals[rows], self.spread_estimated[rows],
                        self.imbalance_estimated[rows])


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
    spread, imbalance = (np.nan, np.nan) if book is None else (book.spread_bps, book.imbalance)
    return sliding_windows(candles, np.array([len(candles) - 1]), np.array([spread]), np.array([imbalance]),
                           book_per_window=True)


def stack(windows: list[Windows]) -> Windows:
    """Concatenate batches (e.g. one per request item) into one batch."""
    cat = lambda name: np.concatenate([getattr(w, name) for w in windows])  # noqa: E731
    return Windows(*(cat(name) for name in Windows.__dataclass_fields__))


def sliding_windows(
    candles: Candles,
    ends: np.ndarray,
    book_spread_bps: np.ndarray | None = None,
    book_imbalance: np.ndarray | None = None,
    book_per_window: bool = False,
) -> Windows:
    """Windows of WINDOW bars ending (inclusive) at each index in `ends`.

    Book values are per bar of `candles` (indexed by `ends`), or per window with `book_per_window`.
    """
    ends = np.asarray(ends)
    idx = ends[:, None] + np.arange(-WINDOW + 1, 1)[None, :]
    if idx.size and idx.min() < 0:
        raise ValueError(f"window end {int(np.min(ends))} leaves fewer than {WINDOW} bars before it")
    tbv = candles.taker_buy_volume
    nan = np.full(len(ends), np.nan)

    def book(values: np.ndarray | None) -> np.ndarray:
        if values is None:
            return nan
        return np.asarray(values, dtype=np.float64) if book_per_window else values[ends]

    return Windows(
        candles.ts[idx], candles.open[idx], candles.high[idx], candles.low[idx], candles.close[idx],
        candles.volume[idx], np.full(idx.shape, np.nan) if tbv is None else tbv[idx],
        book(book_spread_bps), book(book_imbalance),
    )


def compute(w: Windows, use_book: bool = True) -> Features:
    """The feature vector and regime signals of every window in the batch."""
    h, lo, c, v = w.high, w.low, w.close, w.volume
    log_c = np.log(c)
    ret = log_c[:, 1:] - log_c[:, :-1]  # (B, W-1)
    rng = (h - lo) / c  # (B, W)
    log_rng = np.log(np.maximum(rng, RANGE_FLOOR))
    scale = _mean(v, keepdims=True)
    eps = scale * 1e-6 + 1e-12
    relvol = np.minimum(np.maximum(np.log((v + eps) / (scale + eps)), -20.0), 20.0)
    flow = _flow(w)  # (B, W)

    lags = [a[:, :-N_LAGS - 1:-1] for a in (ret, log_rng, relvol, flow)]  # the last N_LAGS, lag 0 first
    har = [np.log(np.maximum(_mean(rng[:, -n:]), RANGE_FLOOR)) for n in HAR_BARS]
    calendar = _calendar(w.ts[:, -1])

    volatility = _mean(rng[:, -SHORT_VOL_BARS:])
    volatility_long = _mean(rng)
    vol_shift = _mean(rng[:, -SHIFT_BARS:]) / np.maximum(volatility_long, 1e-12)
    path = np.abs(ret).sum(axis=1)
    trend = np.abs(log_c[:, -1] - log_c[:, 0]) / np.maximum(path, 1e-12)

    book_spread = w.book_spread_bps if use_book else np.full(len(w), np.nan)
    book_imb = w.book_imbalance if use_book else np.full(len(w), np.nan)
    spread_estimated = ~np.isfinite(book_spread)
    imbalance_estimated = ~np.isfinite(book_imb)
    spread = np.where(spread_estimated, _corwin_schultz_bps(h, lo), book_spread)
    imbalance = np.where(imbalance_estimated, flow[:, -1], book_imb)

    signals = np.stack([volatility * 1e4, spread, imbalance, trend, vol_shift], axis=1)
    x = np.concatenate([*lags, np.stack(har, axis=1), calendar, signals], axis=1)
    return Features(x.astype(np.float32), signals, spread_estimated, imbalance_estimated)


def _mean(a: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """Row means, bit for bit np.mean's (a sum, then one division), without its per-call Python cost,
    which dominates at the service's batch of one window (numbers in the commit that added it)."""
    return a.sum(axis=1, keepdims=keepdims) / a.shape[1]


def _calendar(ts_ms: np.ndarray) -> np.ndarray:
    """(B,) epoch ms → (B, 4): sin and cos of the time of day and of the day of the week (UTC)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    day = np.floor_divide(ts, DAY_MS)
    tod = 2.0 * np.pi * (ts - day * DAY_MS) / DAY_MS
    dow = 2.0 * np.pi * np.mod(day + EPOCH_WEEKDAY, 7) / 7.0
    return np.stack([np.sin(tod), np.cos(tod), np.sin(dow), np.cos(dow)], axis=1)


def _corwin_schultz_bps(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Corwin & Schultz (2012) two-bar high-low spread estimate, negatives set to 0, window mean, bps."""
    hl = np.log(high / low) ** 2
    beta = hl[:, 1:] + hl[:, :-1]
    gamma = np.log(np.maximum(high[:, 1:], high[:, :-1]) / np.minimum(low[:, 1:], low[:, :-1])) ** 2
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _CS_DENOMINATOR - np.sqrt(gamma / _CS_DENOMINATOR)
    spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return _mean(np.maximum(spread, 0.0)) * 1e4


def _flow(w: Windows) -> np.ndarray:
    """Per bar, the taker-buy share mapped to [-1, 1]; the close location where there is no taker volume."""
    v, tbv = w.volume, w.taker_buy_volume
    share = np.where(v > 0, 2.0 * tbv / np.where(v > 0, v, 1.0) - 1.0, 0.0)
    span = w.high - w.low
    c = w.close
    location = np.where(span > 0, ((c - w.low) - (w.high - c)) / np.where(span > 0, span, 1.0), 0.0)
    return np.minimum(np.maximum(np.where(np.isfinite(tbv), share, location), -1.0), 1.0)
