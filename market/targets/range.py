"""`range`: ln(high / low) of the next bar (over the next `horizon` bars: highest high over lowest low).

In price units (a fraction: 0.004 is a 40 bp range), as a trader reads a range. HAR (Corsi 2009, in
levels) regresses it on the mean per-bar range over the last 1, 5 and 22 bars; persistence forecasts the
last h bars' range.
"""

from __future__ import annotations

import numpy as np

from market.candles import Candles
from market.targets import register
from market.targets.base import HAR_BARS, Target, future, trailing


@register
class Range(Target):
    name = "range"
    units = "ln(high / low): the log range of the next h bars (highest high over lowest low)"
    description = "the log high-low range of the next h bars"
    sigma_reference = True

    def y(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        h = self.horizon
        high, low = future(candles.high, ends, h).max(axis=1), future(candles.low, ends, h).min(axis=1)
        return np.log(high / low).astype(np.float32)

    def persistence(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        h = self.horizon
        high, low = trailing(candles.high, ends, h).max(axis=1), trailing(candles.low, ends, h).min(axis=1)
        return np.log(high / low)

    def har_terms(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        per_bar = np.log(candles.high / candles.low)
        return np.stack([trailing(per_bar, ends, n).mean(axis=1) for n in HAR_BARS], axis=1)
