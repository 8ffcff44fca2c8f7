"""The range each feature took on a family's training split, and which features of a window leave it.

A network answers anything with confidence, even a window no market produced (one bad tick, a price in
the wrong units): issue 13 saw a last high × 1e6 answered with a predicted log return of −9,485. The
training job records, per feature, the training split's 0.1 % and 99.9 % quantiles (`fit`); the
service flags, or refuses, a window whose features fall outside them (`Ranges.outside`).

The quantiles alone would flag ordinary windows: with 43 features, about 6 % of the held-out windows of
a 200K-bar synthetic family have some feature beyond them. So a window is out only beyond the range
widened on each side by `margin` times its width; the service's default margin, 0.5, flags 0.03 % of
its test windows (0 to 0.08 % of validation, on the synthetic market before and after its version 2),
and the × 1e6 tick by far (numbers in the commit that added this module and in the next).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

QUANTILES = (0.001, 0.999)


@dataclass(frozen=True)
class Ranges:
    """Per feature (in `names` order), the low and high quantile of the training split."""

    names: tuple[str, ...]
    low: np.ndarray  # (F,) float64
    high: np.ndarray  # (F,) float64
    quantiles: tuple[float, float] = QUANTILES
    # margin → (low, high) widened, float32; filled on first use
    _limits: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, compare=False,
                                                                 repr=False)

    def outside(self, x: np.ndarray, margin: float) -> np.ndarray:
        """(B, F) finite float32 features → (B, F) bool: beyond [low − margin·width, high + margin·width].

        The widened limits are kept per margin as float32, the features' type: mixed-type comparisons
        cost more than the comparison itself (numbers in the commit that added this module)."""
        if margin not in self._limits:
            width = (self.high - self.low) * margin
            low, high = self.low - width, self.high + width
            self._limits[margin] = (low.astype(np.float32), high.astype(np.float32))
        low, high = self._limits[margin]
        return (x < low) | (x > high)

    def out_names(self, out: np.ndarray) -> list[list[str]]:
        """Each row of `outside`'s answer as the names of its features out of range."""
        return [[self.names[j] for j in np.flatnonzero(row)] for row in out]

    def bounds(self) -> dict[str, tuple[float, float]]:
        return {name: (float(lo), float(hi)) for name, lo, hi in zip(self.names, self.low, self.high,
                                                                      strict=True)}

    @classmethod
    def from_bounds(cls, bounds: dict[str, tuple[float, float]], names: tuple[str, ...],
                    quantiles: tuple[float, float] = QUANTILES) -> Ranges:
        missing = [name for name in names if name not in bounds]
        if missing or len(bounds) != len(names):
            raise ValueError(f"ranges must give every feature once: missing {missing}, "
                             f"extra {sorted(set(bounds) - set(names))}")
        low = np.array([bounds[name][0] for name in names], dtype=np.float64)
        high = np.array([bounds[name][1] for name in names], dtype=np.float64)
        bad = [name for name, lo, hi in zip(names, low, high, strict=True)
               if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi)]
        if bad:
            raise ValueError(f"ranges of {bad} are not finite with low ≤ high")
        return cls(names, low, high, quantiles)


def fit(x: np.ndarray, names: tuple[str, ...], quantiles: tuple[float, float] = QUANTILES) -> Ranges:
    """The quantiles of each column of the training split's (n, F) features."""
    assert x.ndim == 2 and x.shape[1] == len(names), (x.shape, len(names))
    low, high = np.quantile(x.astype(np.float64), quantiles, axis=0)
    return Ranges(tuple(names), low, high, quantiles)
