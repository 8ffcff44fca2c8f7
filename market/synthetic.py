"""A seeded synthetic market with known regimes and a known best-achievable prediction, built so that
model size matters where markets are hard and not where they are calm.

Dynamics (one step per bar t; every random draw of a path comes from `numpy.random.Generator(seed)`):

* **Regime** g_t ∈ {calm, normal, volatile, crisis} follows a Markov chain with strong persistence
  (expected stays of 300, 200, 150 and 125 bars; long-run shares about 28%, 31%, 25% and 15%) that
  moves mostly to neighbouring regimes. The hard regimes hold about 40% of the bars, so a model has
  enough of them to learn from.
* **Volatility** σ_t = σ_g · exp(h_t), with h a slow AR(1) log-volatility wobble inside each regime
  (σ_g = 8, 15, 30, 80 bp per bar): the next bar's return has standard deviation σ_t (`sigma`).
* **Observable order flow**, all of it exactly computable from the candles and the book at t (so a
  model that reads the window well can reach the oracle):
    - book imbalance I_t ∈ (-1, 1), tanh of an AR(1) (φ = 0.8), which splits the top-of-book depth;
    - the taker-buy share of every bar, (1 + q_t) / 2 with q_t = tanh(1.2 a_t), a_t a weakly
      persistent AR(1) (φ = 0.2): its lags are close to independent inputs;
    - volume = level_g · exp(0.45 w_t), w_t AR(1) (φ = 0.3), seen by a model as the log volume of
      each bar relative to the window's mean (`market.features` relvol lags).
  The signal reads these 17 inputs: I_t, q_t … q_{t−7} and the relative log volumes of bars t … t−7.
* **Next return** r_{t+1} = σ_t · (f_g(inputs_t) + ε_t), ε ~ N(0, 1). Returns themselves carry no
  signal (prices are a martingale, as in real markets); order flow does. Per regime, f_g is a simple
  part plus a share `HARD_SHARE` of one sum H of 64 random three-way interactions of the squashed inputs,
  the same H in every regime:
    regime    simple part                               share of H in the signal variance
    calm      0.6 I + 0.4 q_t                           0      linear: any tier fits it
    normal    tanh(1.5 I) + 0.5 q_t + 0.4 q_t q_{t−1}   0.2
    volatile  sin(2.5 I) + 0.5 q_t                      0.7
    crisis    tanh(3 I) + 0.5 q_t                       0.65
  each part scaled so the regime's signal variance R²/(1 − R²) gives the per-regime oracle R² in
  `ORACLE_R2` (0.15, 0.15, 0.24, 0.30: stressed markets are more predictable from order flow and carry
  most of the variance). Why interactions: in scratch studies (bounded inputs, 150-300K rows) a sum of
  pairwise products or a planted deep ReLU network was fitted as well by 2×64 as by 8×256, while dozens
  of three-way interactions of 17-20 inputs left 2×64 far behind (24 terms: 15% of the oracle against 80%
  for 8×256): small networks run out of units to represent many multiplicative terms. Why one H for
  every regime: with a separate sum per regime, each learned from its own regime's rows only, not even
  8×256 learned the crisis one in the job's budget (46% of the oracle in crisis); shared, H is learned
  from every stressed row. Measured with the default job (`tiered train`, 1.4M bars): M0 82% of the
  oracle; chain M3 98% of M0 in calm, 80% in volatile, 82% in crisis; 2×64 trained on labels alone 75% of
  M0 overall. The interaction terms (which inputs, which weights) are a property of the market, drawn
  once from STRUCTURE_SEED, the same for every path seed. The true expected next return μ_t = σ_t f_g(…)
  is stored (`expected_return`), so every model is scored against the oracle R² (μ against the realised
  return), overall and per regime. μ is exact given the regime and σ_t; a model sees neither directly
  (it infers them from the window's ranges, spread and volume), so even a perfect reader of the window
  stays a little below the oracle.
* **Candles**: open = previous close, close = open·exp(r); high and low stretch beyond the body by a
  half-normal multiple of the bar's σ; taker-buy volume = volume · (1 + q) / 2.
* **Book** at each close: mid = close, spread = s_g · lognormal (s_g = 1, 2.5, 6, 20 bp), depth
  log-normal, split between bid (1 + I) / 2 and ask (1 − I) / 2.

Speed: only the regime chain is a loop; everything else is vectorised (1M bars in about a second).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from market.candles import Book, Candles
from market.features import WINDOW

REGIMES: tuple[str, ...] = ("calm", "normal", "volatile", "crisis")

SIGMA = np.array([0.0008, 0.0015, 0.0030, 0.0080])
SPREAD_BPS = np.array([1.0, 2.5, 6.0, 20.0])
VOLUME_LEVEL = np.array([80.0, 120.0, 220.0, 500.0])
# Row = from, column = to. Persistence on the diagonal; moves go mostly to neighbouring regimes.
TRANSITIONS = np.array([
    [0.99667, 0.00333, 0.00000, 0.00000],
    [0.00300, 0.99500, 0.00190, 0.00010],
    [0.00000, 0.00200, 0.99333, 0.00467],
    [0.00000, 0.00080, 0.00720, 0.99200],
])
ORACLE_R2 = np.array([0.15, 0.15, 0.24, 0.30])  # per regime: R² of μ against r_{t+1}
HARD_TERMS = 64  # three-way interactions, one sum shared by every regime
HARD_SHARE = np.array([0.0, 0.2, 0.7, 0.65])  # the interactions' share of each regime's signal variance
FLOW_LAGS = 8
STRUCTURE_SEED = 20_261_202  # draws the market's law (the interaction terms), not a path
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
BAR_MS = 60_000
INPUT_NAMES: tuple[str, ...] = (
    "imbalance", *(f"flow_lag{k}" for k in range(FLOW_LAGS)), *(f"relvol_lag{k}" for k in range(FLOW_LAGS)),
)


@dataclass(frozen=True)
class SyntheticMarket:
    """A simulated series: candles, the book at every close, and the ground truth behind them."""

    candles: Candles
    bid: np.ndarray  # (n,) best bid at each close
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    regime: np.ndarray  # (n,) int8 index into REGIMES: the true regime of bar t
    sigma: np.ndarray  # (n,) σ_t: standard deviation of the log return of bar t+1 given information at t
    expected_return: np.ndarray  # (n,) E[log return of bar t+1 | information at t]; NaN on the last bar
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


# -- the law: which inputs interact, with which weights ------------------------------------------


@dataclass(frozen=True)
class Law:
    """The fixed part of the market: input standardisation and the interaction terms."""

    center: np.ndarray  # (17,) input standardisation before squashing
    scale: np.ndarray
    terms: np.ndarray  # (K, 3) input indices of each three-way interaction
    weights: np.ndarray  # (K,)
    simple_std: np.ndarray  # (4,) reference std of each regime's simple part
    hard_std: float  # reference std of the interaction sum

    def signal(self, regime: np.ndarray, u: np.ndarray) -> np.ndarray:
        """f_g(inputs) for every row: (n,) regime indices and (n, 17) inputs → (n,) in units of σ."""
        variance = ORACLE_R2 / (1.0 - ORACLE_R2)
        simple = np.zeros(u.shape[0])
        for g in range(len(REGIMES)):
            rows = regime == g
            if rows.any():
                simple[rows] = _simple(g, u[rows]) / self.simple_std[g]
        share = HARD_SHARE[regime]
        return (np.sqrt(variance[regime] * (1.0 - share)) * simple
                + np.sqrt(variance[regime] * share) * self.interactions(u) / self.hard_std)

    def interactions(self, u: np.ndarray) -> np.ndarray:
        squashed = np.tanh((u - self.center) / self.scale)
        t = self.terms
        return (squashed[:, t[:, 0]] * squashed[:, t[:, 1]] * squashed[:, t[:, 2]]) @ self.weights


def _simple(g: int, u: np.ndarray) -> np.ndarray:
    imbalance, q0, q1 = u[:, 0], u[:, 1], u[:, 2]
    if g == 0:
        return 0.6 * imbalance + 0.4 * q0
    if g == 1:
        return np.tanh(1.5 * imbalance) + 0.5 * q0 + 0.4 * q0 * q1
    if g == 2:
        return np.sin(2.5 * imbalance) + 0.5 * q0
    return np.tanh(3.0 * imbalance) + 0.5 * q0


@functools.cache
def law() -> Law:
    """The market's law, drawn from STRUCTURE_SEED; its scales are measured on a reference path."""
    g = np.random.default_rng(STRUCTURE_SEED)
    terms = np.array([g.choice(len(INPUT_NAMES), 3, replace=False) for _ in range(HARD_TERMS)])
    weights = g.normal(0.0, 1.0, HARD_TERMS)
    # Reference inputs: a long path of the exogenous processes in one regime (volume level constant).
    reference = _exogenous(200_000, np.random.default_rng(STRUCTURE_SEED + 1), np.zeros(200_000, np.int8))
    u = reference.inputs
    center, scale = u.mean(axis=0), u.std(axis=0)
    bare = Law(center, scale, terms, weights, np.ones(4), 1.0)
    simple_std = np.array([_simple(k, u).std() for k in range(len(REGIMES))])
    return Law(center, scale, terms, weights, simple_std, float(bare.interactions(u).std()))


# -- paths -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exogenous:
    imbalance: np.ndarray  # (n,)
    flow: np.ndarray  # (n,) q_t in (-1, 1)
    volume: np.ndarray  # (n,)
    inputs: np.ndarray  # (n, 17) what the signal reads at t


def _exogenous(n: int, rng: np.random.Generator, regime: np.ndarray) -> _Exogenous:
    imbalance = np.tanh(_ar1(rng.normal(0.0, 0.45, n), 0.8))
    flow = np.tanh(1.2 * _ar1(rng.normal(0.0, np.sqrt(1.0 - 0.2**2), n), 0.2))
    volume = VOLUME_LEVEL[regime] * np.exp(0.45 * _ar1(rng.normal(0.0, np.sqrt(1.0 - 0.3**2), n), 0.3))
    return _Exogenous(imbalance, flow, volume, _inputs(imbalance, flow, volume))


def _inputs(imbalance: np.ndarray, flow: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """(n, 17): I_t, q_t..q_{t−7}, and log(volume_{t−k} / mean volume of the WINDOW bars ending at t),
    the very relative volume `market.features` computes (bars before the series start count as 0)."""
    n = imbalance.shape[0]
    u = np.zeros((n, len(INPUT_NAMES)))
    u[:, 0] = imbalance
    cumulative = np.concatenate([[0.0], np.cumsum(volume)])
    ends = np.arange(n)
    starts = np.maximum(ends - WINDOW + 1, 0)
    mean = (cumulative[ends + 1] - cumulative[starts]) / (ends - starts + 1)
    eps = mean * 1e-6 + 1e-12
    for k in range(FLOW_LAGS):
        u[k:, 1 + k] = flow[:n - k]
        u[k:, 1 + FLOW_LAGS + k] = np.log((volume[:n - k] + eps[k:]) / (mean[k:] + eps[k:]))
    return u


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


def simulate(bars: int, seed: int = 7) -> SyntheticMarket:
    """Simulate `bars` bars of the regime-switching market with generator seed `seed`."""
    if bars < 2:
        raise ValueError(f"bars must be at least 2, got {bars}")
    rng = np.random.default_rng(seed)
    regime = _regime_path(bars, rng)
    sigma = SIGMA[regime] * np.exp(_ar1(rng.normal(0.0, 0.05, bars), 0.98))
    flow = _exogenous(bars, rng, regime)
    expected = sigma * law().signal(regime, flow.inputs)
    expected[-1] = np.nan  # bar n has no next bar
    eps = rng.normal(0.0, 1.0, bars)

    returns = np.zeros(bars)  # returns[t] = log(close_t / close_{t-1})
    returns[1:] = expected[:-1] + sigma[:-1] * eps[:-1]
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.empty(bars)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    bar_sigma = np.concatenate([sigma[:1], sigma[:-1]])  # the σ bar t was drawn with
    stretch = np.abs(rng.normal(0.0, 1.0, (2, bars))) * 0.6 * bar_sigma
    high = np.maximum(open_, close) * np.exp(stretch[0])
    low = np.minimum(open_, close) * np.exp(-stretch[1])
    taker_buy = flow.volume * (1.0 + flow.flow) / 2.0

    spread = SPREAD_BPS[regime] * np.exp(rng.normal(0.0, 0.3, bars)) * 1e-4
    bid = close * (1.0 - spread / 2.0)
    ask = close * (1.0 + spread / 2.0)
    depth = 10.0 * np.exp(rng.normal(0.0, 0.5, bars))
    bid_size = depth * (1.0 + flow.imbalance) / 2.0
    ask_size = depth * (1.0 - flow.imbalance) / 2.0

    ts = START_MS + BAR_MS * np.arange(bars, dtype=np.int64)
    candles = Candles.from_arrays(ts, open_, high, low, close, flow.volume, taker_buy)
    return SyntheticMarket(candles, bid, ask, bid_size, ask_size, regime, sigma, expected, seed)
