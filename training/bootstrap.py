"""Block-bootstrap confidence intervals for metrics on a time-ordered test split.

Test rows are neighbours in time: their errors are autocorrelated (and labels over h bars overlap), so
resampling single rows would understate the uncertainty. Rows are cut into consecutive blocks of
`length` rows; a resample draws as many blocks as there are, with replacement (Künsch 1989, Carlstein
1986, non-overlapping blocks). Every metric is a function of per-row sums (`Kind.row_stats` →
`Kind.from_sums`), so a resample is a vector of block counts and its sums one matrix product: all
models, regimes and resamples cost well under a second. Models are resampled with the same blocks, so
differences are paired.

The block length follows Politis & White (2004, with the correction of Patton, Politis & White 2009)
on the series whose persistence matters (`training.skill` takes the longer of the choices for a loss
difference and for M0's own loss), never below the target's horizon (labels over h bars share h − 1
bars), and never so short that the split has more than `MAX_BLOCKS` blocks (longer blocks than needed
keep the interval valid; they only add a little noise to it, and they bound the cost).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_BLOCKS = 5_000
RESAMPLES = 1_000
CONFIDENCE = 0.95


def politis_white(x: np.ndarray) -> float:
    """Optimal block length of the circular block bootstrap for the mean of x (flat-top lag window)."""
    n = len(x)
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    if n < 8 or not np.any(x):
        return 1.0
    kn = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = min(n - 1, math.ceil(math.sqrt(n)) + kn)
    spectrum = np.fft.rfft(x, 2 * n)
    acov = np.fft.irfft(spectrum * np.conj(spectrum))[: m_max + 1] / n  # R(0..m_max)
    rho = acov / acov[0]
    bound = 2.0 * math.sqrt(math.log10(n) / n)
    m_hat = m_max
    for m in range(0, m_max - kn + 1):  # first lag after which kn autocorrelations stay insignificant
        if np.all(np.abs(rho[m + 1:m + 1 + kn]) < bound):
            m_hat = m
            break
    big_m = min(2 * m_hat, m_max)
    if big_m == 0:  # no significant autocorrelation at all
        return 1.0
    k = np.arange(1, big_m + 1)
    weight = np.clip(2.0 * (1.0 - k / big_m), 0.0, 1.0)  # the flat-top (trapezoid) window
    g = 2.0 * np.sum(weight * k * acov[1:big_m + 1])
    spectral0 = acov[0] + 2.0 * np.sum(weight * acov[1:big_m + 1])
    d = 4.0 / 3.0 * spectral0 * spectral0
    if d <= 0:
        return 1.0
    return float((2.0 * g * g / d) ** (1.0 / 3.0) * n ** (1.0 / 3.0))


def block_length(series: np.ndarray, minimum: int = 1) -> int:
    """Politis-White on `series`, at least `minimum`, at most a third of it, at least n / MAX_BLOCKS."""
    n = len(series)
    chosen = round(politis_white(series))
    return int(min(max(chosen, minimum, math.ceil(n / MAX_BLOCKS), 1), max(1, n // 3)))


@dataclass(frozen=True)
class Resampler:
    """One set of block resamples of n rows, applied to any number of per-row statistics."""

    n: int
    length: int
    counts: np.ndarray  # (resamples, blocks): how often each block is drawn

    @classmethod
    def draw(cls, n: int, length: int, resamples: int = RESAMPLES, seed: int = 0) -> Resampler:
        blocks = math.ceil(n / length)
        drawn = np.random.default_rng(seed).integers(0, blocks, size=(resamples, blocks))
        flat = (drawn + blocks * np.arange(resamples)[:, None]).ravel()
        counts = np.bincount(flat, minlength=resamples * blocks).reshape(resamples, blocks)
        return cls(n, length, counts.astype(np.float64))

    def sums(self, stats: np.ndarray) -> np.ndarray:
        """(n, S) per-row statistics → (resamples, S) their sums over each resample."""
        assert stats.shape[0] == self.n, f"{stats.shape[0]} rows of statistics for a resampler of {self.n}"
        per_block = np.add.reduceat(stats, np.arange(0, self.n, self.length), axis=0)  # (blocks, S)
        return self.counts @ per_block


def interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of bootstrap values (NaN resamples, e.g. a regime drawn empty, left out)."""
    finite = values[np.isfinite(values)]
    if finite.size < 0.9 * values.size:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)
