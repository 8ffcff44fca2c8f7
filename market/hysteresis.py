"""Regime hysteresis: a symbol followed bar by bar changes regime only on clear or lasting evidence.

`regime.detect` reads each window on its own, so a stress signal hovering at a threshold flips the
regime (and the tier answering) from one bar to the next. `Hysteresis` keeps one regime in force per
symbol and moves it to the detector's regime only when

  * the move is clear: the detector gives the same answer with every stress threshold moved `margin`
    against the move (up: thresholds + margin; down: thresholds − margin), i.e. the stress crossed
    the threshold by at least the margin; or
  * the move lasts: the detector has pointed the same way (above or below the regime in force) for
    `bars` consecutive bars; the regime then becomes the detector's latest answer.

Stress is `regime.stress`, ½·ln(volatility) + ½·ln(spread_bps), so the margin is in those log units.
The other rules of the detector (a volatility shift in a stressed market is crisis, calm needs trend)
apply unchanged inside both tests. `margin=0` or `bars=1` turns hysteresis off; `margin=inf` keeps
only the persistence rule. Each step says whether hysteresis held the regime (the detector alone
would have answered otherwise this bar). The defaults come from `python -m bench hysteresis`, which
counts tier changes on the real candle files with and without it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from market.regime import Thresholds, detect

DEFAULT_MARGIN = 0.075
DEFAULT_BARS = 12


@dataclass(frozen=True)
class HysteresisSettings:
    margin: float = DEFAULT_MARGIN  # stress units, ≥ 0
    bars: int = DEFAULT_BARS  # consecutive bars beyond, ≥ 1

    def __post_init__(self) -> None:
        if not self.margin >= 0:
            raise ValueError(f"hysteresis margin must be >= 0 (stress units), got {self.margin}")
        if self.bars < 1:
            raise ValueError(f"hysteresis bars must be >= 1, got {self.bars}")


@dataclass(frozen=True)
class Step:
    """One bar through the state machine; regimes are indices into `regime.REGIMES`."""

    regime: int  # the regime in force after this bar
    detected: int  # what the detector alone says for this bar
    held: bool  # True when hysteresis kept `regime` although the detector said `detected`


class Hysteresis:
    """The regime in force for one symbol; feed it every closed bar's signals in order."""

    def __init__(self, thresholds: Thresholds, settings: HysteresisSettings | None = None) -> None:
        self.settings = settings or HysteresisSettings()
        self.thresholds = thresholds
        margin = self.settings.margin if np.isfinite(self.settings.margin) else 1e300
        self._up = _shifted(thresholds, margin)  # a move up must clear these
        self._down = _shifted(thresholds, -margin)  # a move down must clear these
        self.regime: int | None = None
        self._pending, self._count = 0, 0  # direction (+1 up, −1 down) and how long it has lasted

    def update(self, signals: np.ndarray) -> Step:
        """The step for one bar's signals, shaped (5,) or (1, 5) in features.SIGNAL_NAMES order."""
        row = np.asarray(signals, dtype=np.float64).reshape(1, -1)
        return self.step(int(detect(row, self.thresholds)[0]), int(detect(row, self._up)[0]),
                         int(detect(row, self._down)[0]))

    def step(self, detected: int, clear_up: int, clear_down: int) -> Step:
        """The transition itself, from the detector's answers at the plain and shifted thresholds."""
        if self.regime is None or detected == self.regime:
            self.regime, self._pending, self._count = detected, 0, 0
            return Step(detected, detected, False)
        direction = 1 if detected > self.regime else -1
        self._count = self._count + 1 if direction == self._pending else 1
        self._pending = direction
        clear = clear_up if direction > 0 else clear_down
        if (clear - self.regime) * direction > 0:  # past the threshold by the margin: move that far
            self.regime = clear
        if self._count >= self.settings.bars:
            self.regime = detected
        if self.regime == detected:
            self._pending, self._count = 0, 0
        return Step(self.regime, detected, self.regime != detected)

    def run(self, signals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row of (n, 5) signals in order → (regime in force, detected, held), each (n,)."""
        plain, up, down = (detect(signals, t) for t in (self.thresholds, self._up, self._down))
        steps = [self.step(int(d), int(u), int(w)) for d, u, w in zip(plain, up, down, strict=True)]
        regime = np.array([s.regime for s in steps], dtype=np.int8)
        return regime, plain.astype(np.int8), regime != plain


def _shifted(thresholds: Thresholds, by: float) -> Thresholds:
    return replace(thresholds, calm=thresholds.calm + by, volatile=thresholds.volatile + by,
                   crisis=thresholds.crisis + by)
