"""`volume`: the log of the next bar's volume relative to its trailing mean.

y = ln(mean volume of bars t+1 .. t+h / mean volume of the window ending at t), the same scaling as the
features' relative log volume: the level of volume does not carry across windows or symbols, its ratio
to the recent mean does. The log-volume analogue of HAR regresses it on the same ratio over the last 1, 5
and 22 bars; persistence forecasts the last h bars' ratio.
"""

from __future__ import annotations

import numpy as np

from market.candles import Candles
from market.features import WINDOW
from market.targets import register
from market.targets.base import HAR_BARS, Target, future, trailing


@register
class Volume(Target):
    name = "volume"
    units = "ln(volume / trailing mean volume): the next h bars' mean volume over the window's mean"
    description = "the log of the next h bars' volume relative to the window's mean volume"

    def _relative(self, candles: Candles, ends: np.ndarray, bars: np.ndarray) -> np.ndarray:
        """(n, k) volumes → (n,) ln(their mean / the window's mean), bounded as the features bound it."""
        scale = trailing(candles.volume, ends, WINDOW).mean(axis=1)
        eps = scale * 1e-6 + 1e-12
        return np.clip(np.log((bars.mean(axis=1) + eps) / (scale + eps)), -20.0, 20.0)

    def y(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        return self._relative(candles, ends, future(candles.volume, ends, self.horizon)).astype(np.float32)

    def persistence(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        return self._relative(candles, ends, trailing(candles.volume, ends, self.horizon))

    def har_terms(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        v = candles.volume
        return np.stack([self._relative(candles, ends, trailing(v, ends, n)) for n in HAR_BARS], axis=1)
