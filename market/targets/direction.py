"""`direction`: down / flat / up over the next `horizon` bars, the flat band scaled by trailing volatility.

The move is the log return over the next h bars in units of σ·√h, σ the window's trailing volatility
(root mean squared log return of its bars), so a band of ±b means the same in calm and stressed
markets. b is fitted on the training split: a third of its windows are flat (`FLAT_SHARE`). Two skills
live inside the three classes and are scored apart: telling flat from moving (a volatility skill) and
up from down (the directional one).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import ClassVar

import numpy as np

from market.candles import Candles
from market.features import WINDOW
from market.targets import register
from market.targets.base import FLOOR, Skills, Target, Truth, log_returns, trailing

FLAT_SHARE = 1.0 / 3.0
_erf = np.frompyfunc(math.erf, 1, 1)


@register
class Direction(Target):
    name = "direction"
    kind = "classes"
    classes = ("down", "flat", "up")
    units = "probability of each class (down, flat, up) over the next h bars"
    description = ("down / flat / up: the log return over the next h bars against a band of ±band·σ·√h, "
                   "σ the window's trailing volatility per bar; band fitted on the training split so that "
                   "a third of its windows are flat")
    skills: ClassVar[Skills] = {"flat_vs_moving": (("flat",), ("down", "up")),
                                "up_vs_down": (("down",), ("up",))}

    def scale(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        """(n,) σ·√h: the window's root mean squared log return (known at t), over h bars."""
        r = trailing(log_returns(candles), ends, WINDOW - 1)
        return np.maximum(np.sqrt(np.mean(r * r, axis=1)), FLOOR) * math.sqrt(self.horizon)

    def move(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        """(n,) the next h bars' log return in units of σ·√h."""
        log_close = np.log(candles.close)
        return (log_close[ends + self.horizon] - log_close[ends]) / self.scale(candles, ends)

    def fit(self, candles: Candles, train_ends: np.ndarray) -> Direction:
        band = float(np.quantile(np.abs(self.move(candles, train_ends)), FLAT_SHARE))
        return replace(self, params={"band": band})

    def band(self) -> float:
        if "band" not in self.params:
            raise ValueError("direction: the flat band is fitted on the training split; call fit() first")
        return self.params["band"]

    def y(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        z, b = self.move(candles, ends), self.band()
        return np.where(z > b, 2, np.where(z < -b, 0, 1)).astype(np.int64)

    def oracle(self, candles: Candles, ends: np.ndarray, truth: Truth) -> np.ndarray | None:
        """Exact class probabilities for one bar when the next return is N(μ_t, σ_t²) given t."""
        if self.horizon != 1 or truth.expected_return is None or truth.sigma is None:
            return None
        edge = self.band() * self.scale(candles, ends)
        mu, sigma = np.asarray(truth.expected_return, np.float64), np.asarray(truth.sigma, np.float64)
        down = _normal_cdf((-edge - mu) / sigma)
        up = 1.0 - _normal_cdf((edge - mu) / sigma)
        return np.stack([down, 1.0 - down - up, up], axis=1)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.asarray(_erf(x / math.sqrt(2.0)), dtype=np.float64))
