"""What a target is: the quantity a family predicts for a window, computed from the bars after it.

A target is a subclass of `Target` in a module of this package, registered with `@register`
(`market/targets/__init__.py` imports every module here, so a new target is one module). Given a
`Candles` series and window end indices t (the window's last bar, "now"), it gives y for each window
from bars t+1 .. t+horizon, in the units it states; the pieces of the past it needs for scaling (a
trailing mean volume, a trailing volatility) come from the window itself, so they are known at t.

Kinds: `regression` (y is one float per window, the model outputs it in the target's units) and
`classes` (y is a class index, the model outputs one probability per class). Training keys its
losses, output head and metric on the kind (`training/kinds/`).

Besides y a target may give what its classical baselines read (the last observed value for
persistence; trailing averages over three horizons for HAR) and, where a simulator knows the truth
(`Truth`), the best achievable prediction (the oracle). Everything here is numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from market.candles import Candles
from market.features import WINDOW

Kind = Literal["regression", "classes"]
Skills = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # skill name → (group a, group b) of classes
HAR_BARS = (1, 5, 22)  # the three horizons of a HAR model (Corsi 2009), in bars: "day, week, month"
FLOOR = 1e-6  # a zero range or move has no logarithm; 0.01 bp stands in for it
MAX_HORIZON = WINDOW - 1  # a window holds this many returns, so a persistence forecast can look as far back


@dataclass(frozen=True)
class Truth:
    """What a simulator knows about each window's next bar, given the information at its end t."""

    expected_return: np.ndarray | None = None  # (n,) E[r_{t+1}]
    sigma: np.ndarray | None = None  # (n,) standard deviation of r_{t+1}


@dataclass(frozen=True)
class Target:
    """One target at one horizon, with the parameters it fitted on the training split (if any)."""

    name: ClassVar[str]
    kind: ClassVar[Kind] = "regression"
    units: ClassVar[str]  # what a prediction is, in words: the answer's natural units
    description: ClassVar[str]
    default_horizon: ClassVar[int] = 1
    classes: ClassVar[tuple[str, ...]] = ()  # kind "classes": the output columns, in order
    signed: ClassVar[bool] = False  # the sign of y means something (directional accuracy is reported)
    # kind "classes": binary skills inside the classes, each (group a, group b), scored apart
    skills: ClassVar[Skills] = {}
    sigma_reference: ClassVar[bool] = False  # a fit on the true log σ_t is a meaningful reference
    # Learned in units of a volatility forecast from the window (training/volscale.py), served in `units`:
    # for a quantity whose size follows volatility, so calm and stressed windows count alike in training.
    volatility_scaled: ClassVar[bool] = False

    horizon: int = 0  # 0: the target's default
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.horizon == 0:
            object.__setattr__(self, "horizon", self.default_horizon)
        if not 1 <= self.horizon <= MAX_HORIZON:
            raise ValueError(f"{self.name}: horizon {self.horizon} bars; use 1 to {MAX_HORIZON}")

    @property
    def width(self) -> int:
        """Model outputs per window: one value, or one probability per class."""
        return len(self.classes) or 1

    def fit(self, candles: Candles, train_ends: np.ndarray) -> Target:
        """The target with whatever it fits on the training windows (e.g. a class band); default none."""
        return self

    def y(self, candles: Candles, ends: np.ndarray) -> np.ndarray:
        """(n,) float32 values (regression) or int64 class indices, from bars t+1 .. t+horizon."""
        raise NotImplementedError

    def persistence(self, candles: Candles, ends: np.ndarray) -> np.ndarray | None:
        """(n,) the same quantity measured over the bars up to t, where "no change" is a forecast."""
        return None

    def har_terms(self, candles: Candles, ends: np.ndarray) -> np.ndarray | None:
        """(n, 3) the quantity's trailing averages over HAR_BARS, for a HAR regression; None: no HAR."""
        return None

    def oracle(self, candles: Candles, ends: np.ndarray, truth: Truth) -> np.ndarray | None:
        """(n, width) the best achievable prediction, where the truth determines it; None otherwise."""
        return None

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "horizon": self.horizon, "units": self.units, "kind": self.kind,
                "classes": list(self.classes) or None, "description": self.description,
                "params": dict(self.params), "volatility_scaled": self.volatility_scaled}


def future(values: np.ndarray, ends: np.ndarray, horizon: int) -> np.ndarray:
    """(n, horizon) values[t+1 .. t+horizon] for each end t."""
    return values[ends[:, None] + np.arange(1, horizon + 1)[None, :]]


def trailing(values: np.ndarray, ends: np.ndarray, bars: int) -> np.ndarray:
    """(n, bars) values[t−bars+1 .. t] for each end t (every end has a full window behind it)."""
    return values[ends[:, None] + np.arange(-bars + 1, 1)[None, :]]


def log_returns(candles: Candles) -> np.ndarray:
    """(n,) r_t = log(close_t / close_{t−1}); r_0 = 0."""
    log_close = np.log(candles.close)
    return np.concatenate([[0.0], np.diff(log_close)])
