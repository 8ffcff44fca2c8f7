"""A seeded synthetic market with known regimes and a known best-achievable prediction.

Dynamics (one step per bar t; every random draw comes from one `numpy.random.Generator(seed)`):

* **Regime** g_t ∈ {calm, normal, volatile, crisis} follows a Markov chain with strong persistence
  (expected stays of 250, 200, 100 and 50 bars;
  long-run shares about 34%, 45%, 16% and 5%) and moves mostly to neighbouring regimes;
  crisis is rare and is entered from volatile or, seldom, straight from normal.
* **Volatility** σ_t = σ_g · exp(h_t), with h a slow AR(1) log-volatility wobble inside each regime
  (σ_g = 8, 15, 30, 80 bp per bar).
* **Order-flow imbalance** I_t ∈ (-1, 1): tanh of an AR(1) process (φ = 0.8); it is observable in
  the top-of-book sizes and, with noise, in the taker-buy share of volume.
* **Momentum** m_t = (r_{t-4} + … + r_t) / (σ_t √5) and **last move** z_t = r_t / σ_t.
* **Next return** r_{t+1} = σ_t · (f_g(I_t, m_t, z_t) + ε_t), ε ~ N(0, 1), with a signal that is
  different and increasingly non-linear per regime:
    calm      f = 0.55 I + 0.25 tanh(m)                          flow and trend following
    normal    f = 0.60 tanh(1.5 I) + 0.20 tanh(m) − 0.20 tanh(z)  flow, weak reversal
    volatile  f = 0.55 sin(2.5 I) − 0.45 tanh(1.5 z)(1 − |I|)      reversal that flow switches off
    crisis    f = 0.60 tanh(3 I)·tanh(2 m) − 0.55 tanh(2 z) + 0.35 (I² − 0.3)
  The true expected next return is μ_t = σ_t f_g(…) (column `expected_return`), so the oracle R²
  (μ_t against the realised r_{t+1}) is known: about 0.2 on the default seed
  (`tiered market --bars 1000000 --seed 7 --evaluate-detector` prints it).
* **Candles**: open = previous close, close = open·exp(r); high and low stretch beyond the body by a
  half-normal multiple of σ; volume is log-normal, larger in stressed regimes and on big moves;
  taker-buy volume = volume · clip(0.5 + 0.35 I + noise).
* **Book** at each close: mid = close, spread = s_g · lognormal (s_g = 1, 2.5, 6, 20 bp), total
  depth log-normal, split between bid and ask by I.

Speed: the recursion (momentum depends on past returns) runs in one plain loop over pre-drawn
numbers; the rest is vectorised. One million bars take a few seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from market.candles import Book, Candles

REGIMES: tuple[str, ...] = ("calm", "normal", "volatile", "crisis")

SIGMA = np.array([0.0008, 0.0015, 0.0030, 0.0080])
SPREAD_BPS = np.array([1.0, 2.5, 6.0, 20.0])
VOLUME_LEVEL = np.array([80.0, 120.0, 220.0, 500.0])
# Row = from, column = to. Persistence on the diagonal; crisis is entered rarely.
TRANSITIONS = np.array([
    [0.9960, 0.0040, 0.0000, 0.0000],
    [0.0030, 0.9950, 0.0019, 0.0001],
    [0.0000, 0.0045, 0.9900, 0.0055],
    [0.0000, 0.0040, 0.0160, 0.9800],
])
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
BAR_MS = 60_000


@dataclass(frozen=True)
class SyntheticMarket:
    """A simulated series: candles, the book at every close, and the ground truth behind them."""

    candles: Candles
    bid: np.ndarray  # (n,) best bid at each close
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    regime: np.ndarray  # (n,) int8 index into REGIMES: the true regime of bar t
    expected_return: np.ndarray  # (n,) E[log return of bar t+1 | information at t]; NaN on the last bar
    sigma: np.ndarray  # (n,) σ_t, the standard deviation of the log return of bar t+1 given information at t
    seed: int

    def __len__(self) -> int:
        return len(self.candles)

    def book_at(self, t: int) -> Book:
        return Book.top(self.bid[t], self.bid_size[t], self.ask[t], self.ask_size[t])

    @property
    def next_return(self) -> np.ndarray:
        """Realised log return of bar t+1 (NaN on the last bar)."""
        out = np.full(len(self), np.nan)
        out[:-1] = np.diff(np.log(self.candles.close))
        return out

    def oracle_r2(self) -> float:
        """R² of the true expectation against the realised next return: the best any model can do."""
        return r2_score(self.next_return[:-1], self.expected_return[:-1])


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def _regime_path(n: int, rng: np.random.Generator) -> np.ndarray:
    cumulative = np.cumsum(TRANSITIONS, axis=1)
    u = rng.random(n)
    path = np.empty(n, dtype=np.int8)
    state = 1
    rows = [list(row) for row in cumulative]
    for t in range(n):
        row = rows[state]
        x = u[t]
        state = 0 if x < row[0] else 1 if x < row[1] else 2 if x < row[2] else 3
        path[t] = state
    return path


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """x_t = φ x_{t-1} + shock_t, computed in blocks with closed-form powers (no Python loop per bar)."""
    n = shocks.shape[0]
    out = np.empty(n)
    block = 256
    powers = phi ** np.arange(1, block + 1)
    # Within a block, x = L @ shocks + powers * x_prev, with L lower-triangular Toeplitz in φ.
    lags = np.arange(block)[:, None] - np.arange(block)[None, :]
    kernel = np.where(lags >= 0, phi ** np.clip(lags, 0, None), 0.0)
    prev = 0.0
    for start in range(0, n, block):
        chunk = shocks[start:start + block]
        k = chunk.shape[0]
        values = kernel[:k, :k] @ chunk + powers[:k] * prev
        out[start:start + k] = values
        prev = values[-1]
    return out


def _signal(g: int, i: float, m: float, z: float) -> float:
    th = math.tanh
    if g == 0:
        return 0.55 * i + 0.25 * th(m)
    if g == 1:
        return 0.60 * th(1.5 * i) + 0.20 * th(m) - 0.20 * th(z)
    if g == 2:
        return 0.55 * math.sin(2.5 * i) - 0.45 * th(1.5 * z) * (1.0 - abs(i))
    return 0.60 * th(3.0 * i) * th(2.0 * m) - 0.55 * th(2.0 * z) + 0.35 * (i * i - 0.3)


def simulate(bars: int, seed: int = 7) -> SyntheticMarket:
    """Simulate `bars` bars of the regime-switching market with generator seed `seed`."""
    if bars < 2:
        raise ValueError(f"bars must be at least 2, got {bars}")
    rng = np.random.default_rng(seed)
    regime = _regime_path(bars, rng)
    log_vol = _ar1(rng.normal(0.0, 0.05, bars), 0.98)
    sigma = SIGMA[regime] * np.exp(log_vol)
    imbalance = np.tanh(_ar1(rng.normal(0.0, 0.45, bars), 0.8))
    eps = rng.normal(0.0, 1.0, bars)

    # The recursion: r_{t+1} depends on momentum, i.e. on r_t .. r_{t-4}.
    returns = np.zeros(bars)  # returns[t] = log(close_t / close_{t-1})
    expected = np.full(bars, np.nan)
    reg_l, sig_l, imb_l, eps_l = regime.tolist(), sigma.tolist(), imbalance.tolist(), eps.tolist()
    window = [0.0] * 5
    for t in range(bars - 1):
        s = sig_l[t]
        r_t = returns[t]
        window[t % 5] = r_t
        m = (window[0] + window[1] + window[2] + window[3] + window[4]) / (s * 2.2360679775)
        mu = s * _signal(reg_l[t], imb_l[t], m, r_t / s)
        expected[t] = mu
        returns[t + 1] = mu + s * eps_l[t]

    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.empty(bars)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    stretch = np.abs(rng.normal(0.0, 1.0, (2, bars))) * 0.6 * sigma
    high = np.maximum(open_, close) * np.exp(stretch[0])
    low = np.minimum(open_, close) * np.exp(-stretch[1])
    move = np.abs(returns) / sigma
    volume = VOLUME_LEVEL[regime] * np.exp(0.4 * rng.normal(0.0, 1.0, bars) + 0.3 * np.minimum(move, 4.0))
    buy_share = np.clip(0.5 + 0.35 * imbalance + rng.normal(0.0, 0.05, bars), 0.02, 0.98)
    taker_buy = volume * buy_share

    spread = SPREAD_BPS[regime] * np.exp(rng.normal(0.0, 0.3, bars)) * 1e-4
    bid = close * (1.0 - spread / 2.0)
    ask = close * (1.0 + spread / 2.0)
    depth = 10.0 * np.exp(rng.normal(0.0, 0.5, bars))
    seen = np.clip(imbalance + rng.normal(0.0, 0.02, bars), -0.98, 0.98)
    bid_size = depth * (1.0 + seen) / 2.0
    ask_size = depth * (1.0 - seen) / 2.0

    ts = START_MS + BAR_MS * np.arange(bars, dtype=np.int64)
    candles = Candles.from_arrays(ts, open_, high, low, close, volume, taker_buy)
    return SyntheticMarket(candles, bid, ask, bid_size, ask_size, regime, expected, sigma, seed)
