"""One followed symbol's prediction on each closed bar: its window through the data plane, routed by the
symbol's regime with hysteresis.

    predictor = SymbolPredictor("BTCUSDT", HysteresisSettings(margin=0.075, bars=12))
    outcome = predictor.on_bar(plane, window, book)    # a Prediction, or Unpredicted with the reason

Per bar the family is read once, so a reload applies from the next bar and never inside one. The last W
bars of the window (W the family's window) with the book that came with the bar make a `Query`, as a
/predict body with those candles would: the data plane decides (the window's signals and the detector's
regime), the symbol's `Hysteresis` steps on those signals, and the data plane predicts with the regime in
force. Features, routing and tiers are therefore /predict's; only the regime may differ, and the
outcome says when hysteresis held it.

The hysteresis is built from the family's thresholds and warmed on the windows of the history the feed
held before this bar (candles only: the history has no books), so the regime in force at the first
live bar is the one a follower that had been running all along would have (for a replayed file,
exactly `Hysteresis.run` over its windows). It is built again the same way when a reload changes the
thresholds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from app import windows
from app.dataplane import Answer, DataPlane, Query
from app.errors import ServiceError
from app.registry import Family
from app.windows import Names
from market.candles import Book, Candles
from market.features import SIGNAL_NAMES
from market.hysteresis import Hysteresis, HysteresisSettings
from market.regime import REGIMES


@dataclass(frozen=True)
class Prediction:
    answer: Answer  # its decision's regime is the one in force
    detected: str  # what the detector alone said for this bar
    held: bool  # hysteresis kept the regime in force although the detector said otherwise


@dataclass(frozen=True)
class Unpredicted:
    problem: str  # why this bar has no prediction, and what would fix it


class SymbolPredictor:
    def __init__(self, name: str, settings: HysteresisSettings) -> None:
        self.name, self.settings = name, settings
        self.names = Names("columns", f"{name}.")  # messages point at "BTCUSDT.candles.high[5]"
        self._hysteresis: Hysteresis | None = None

    def on_bar(self, plane: DataPlane, window: Candles, book: Book | None) -> Prediction | Unpredicted:
        """The prediction for the window's last bar (the window oldest first, this bar last)."""
        family = plane.registry.family
        need = family.manifest.features.window
        if len(window) < need:
            return Unpredicted(f"the window holds {len(window)} closed bars and family {family.family_id} "
                               f"needs {need}: the start-up backfill fell short; predictions start once "
                               "the window has filled")
        query = Query(windows.from_candles(window[-need:], book, self.names))
        try:
            decision = plane.decide(query, family)
            step = self._hysteresis_for(plane, family, window).update(_signal_row(decision.signals))
            held_regime = REGIMES[step.regime]
            followed = dataclasses.replace(query, regime=held_regime, symbol=self.name, tracked=True)
            [answer], _ = plane.predict_many([followed], family)
        except ServiceError as e:
            return Unpredicted(e.message)
        return Prediction(answer, REGIMES[step.detected], step.held)

    def _hysteresis_for(self, plane: DataPlane, family: Family, window: Candles) -> Hysteresis:
        current = self._hysteresis
        if current is not None and current.thresholds == family.thresholds:
            return current
        fresh = Hysteresis(family.thresholds, self.settings)
        need = family.manifest.features.window
        history = [Query(windows.from_candles(window[end - need:end], None, self.names))
                   for end in range(need, len(window))]  # every window ending before this bar
        if history:
            signals = np.array([_signal_row(d.signals) for d in plane.decide_many(history, family)])
            fresh.run(signals)
        self._hysteresis = fresh
        return fresh


def _signal_row(signals: dict[str, float]) -> np.ndarray:
    return np.array([signals[name] for name in SIGNAL_NAMES])
