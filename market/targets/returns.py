"""`return`: the log return over the next `horizon` bars (the next bar's by default)."""

from __future__ import annotations

import numpy as np

from market.candles import Candles
from market.targets import register
from market.targets.base import Target, Truth


@register
class Return(Target):
    name = "return"
    units = "log return, log(close[t+h] / close[t])"
    description = "the log return over the next h bars"
    signed = True
    volatility_scaled = True

    def y(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        log_close = np.log(candles.close)
        return (log_close[ends + self.horizon] - log_close[ends]).astype(np.float32)

    def oracle(self, candles: Candles, ends: np.ndarray, truth: Truth) -> np.ndarray | None:
        """The true expected next return: exact for one bar (later bars' expectations move with the path)."""
        if self.horizon != 1 or truth.expected_return is None:
            return None
        return np.asarray(truth.expected_return, dtype=np.float64)[:, None]
