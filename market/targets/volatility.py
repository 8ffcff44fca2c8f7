"""`volatility`: the log of the realised volatility per bar over the next `horizon` bars.

y = ln √(mean of r² over bars t+1 .. t+h), r the bars' log returns: on a log scale because volatility
is multiplicative and heavy-tailed. HAR (Corsi 2009) regresses it on the same measure over the last 1, 5
and 22 bars; persistence forecasts the last h bars' value.
"""

from __future__ import annotations

import numpy as np

from market.candles import Candles
from market.targets import register
from market.targets.base import FLOOR, HAR_BARS, Target, future, log_returns, trailing


def _log_rv(r: np.ndarray) -> np.ndarray:
    """(n, k) returns → (n,) ln √(mean r²), floored at a 0.01 bp move."""
    return np.log(np.maximum(np.sqrt(np.mean(r * r, axis=1)), FLOOR))


@register
class Volatility(Target):
    name = "volatility"
    default_horizon = 5
    units = "ln σ: natural log of the realised volatility per bar (root mean squared log return), next h bars"
    description = "the log of the realised volatility per bar over the next h bars"
    sigma_reference = True

    def y(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        return _log_rv(future(log_returns(candles), ends, self.horizon)).astype(np.float32)

    def persistence(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        return _log_rv(trailing(log_returns(candles), ends, self.horizon))

    def har_terms(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        r = log_returns(candles)
        return np.stack([_log_rv(trailing(r, ends, n)) for n in HAR_BARS], axis=1)
