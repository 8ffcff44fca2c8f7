"""What training does differently per kind of target: losses, the exported head, metrics, baselines.

A kind is keyed by `Target.kind` ("regression", "classes"). Its torch half: the training targets (y
standardised, or class indices), the hard loss on labels, the soft loss against a teacher's outputs
(distillation), and the head that turns the network's outputs into the served prediction in the
target's natural units (normalisation stays inside the exported graph). Its numpy half: the metrics,
whose formulas live in `market.scores` (the service scores live predictions with them too), written as
functions of per-row sums (`row_stats` → `from_sums`) so the point estimate and every bootstrap resample
compute the very same formula, the headline metric a family is judged on and its no-skill level, and
the two classical models any target of the kind gets (a constant, a linear model).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from torch import Tensor, nn

from market import scores
from market.dataset import Dataset
from market.targets import Target
from models.manifest import Metrics
from training.volscale import VolatilityScale

Predict = Callable[[np.ndarray], np.ndarray]  # (n, F) features → (n, width) predictions


@dataclass(frozen=True)
class Scale:
    """Training-split statistics of y that the head undoes (identity for classes); for a volatility-scaled
    target (`Target.volatility_scaled`), y is first divided by a volatility forecast from the window."""

    mean: float = 0.0
    std: float = 1.0
    volatility: VolatilityScale | None = None

    def divisor(self, x: np.ndarray) -> np.ndarray | float:
        return 1.0 if self.volatility is None else self.volatility(x)


class Kind(ABC):
    name: ClassVar[str]
    headline: ClassVar[str]  # the Metrics field a family is judged on
    uses_temperature: ClassVar[bool]  # the soft loss softens both sides with T
    constant_name: ClassVar[str]  # what `constant` is, in words
    linear_name: ClassVar[str]  # the name of the linear baseline

    # -- torch ----------------------------------------------------------------------------------

    @abstractmethod
    def scale(self, ds: Dataset) -> Scale:
        """What the network's targets are scaled by, from the training split only."""

    @abstractmethod
    def encode(self, y: np.ndarray, x: np.ndarray, scale: Scale) -> Tensor:
        """y of a split (and its features) → what the network learns ((n, 1) standardised values, or (n,)
        class indices)."""

    @abstractmethod
    def hard_loss(self, out: Tensor, target: Tensor) -> Tensor: ...

    @abstractmethod
    def soft_loss(self, out: Tensor, teacher_out: Tensor, temperature: float) -> Tensor: ...

    @abstractmethod
    def head(self, net: nn.Module, scale: Scale) -> nn.Module:
        """The exported module: raw features (B, F) → prediction (B, width) in the target's units."""

    # -- numpy ----------------------------------------------------------------------------------

    def row_stats(self, target: Target, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n, S) per-row statistics whose column sums determine every metric (`market.scores`)."""
        return scores.of(target).row_stats(target, pred, y)

    def from_sums(self, target: Target, sums: np.ndarray) -> dict[str, np.ndarray]:
        """(..., S) sums of row_stats → metric name → (...) values; NaN where undefined."""
        return scores.of(target).from_sums(target, sums)

    @abstractmethod
    def loss(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n,) per-row loss (what the block length is chosen on)."""

    def no_skill(self, target: Target) -> float:
        """The headline value of a forecast that knows nothing (R² 0; balanced accuracy 1/classes)."""
        return scores.of(target).no_skill(target)

    @abstractmethod
    def constant(self, y_train: np.ndarray, target: Target) -> np.ndarray:
        """(width,) the training split's own answer: its mean, or its class frequencies."""

    @abstractmethod
    def linear(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
               target: Target) -> tuple[Predict, str, int]:
        """A regularised linear model fitted on (x, y), its strength chosen on the validation split:
        (predict, description, coefficients)."""

    def metrics(self, target: Target, pred: np.ndarray, y: np.ndarray) -> Metrics:
        values = self.from_sums(target, self.row_stats(target, pred, y).sum(axis=0))
        skills = {k[len("skill:"):]: _clean(float(v)) for k, v in values.items() if k.startswith("skill:")}
        plain = {k: _clean(float(v)) for k, v in values.items() if not k.startswith("skill:")}
        return Metrics(**plain, skills=skills or None, rows=int(y.shape[0]))

    def share(self, value: float | None, reference: float | None, target: Target) -> float | None:
        """How much of the reference's skill (above no skill) `value` keeps; None if it has none."""
        base = self.no_skill(target)
        if value is None or reference is None or not reference > base:
            return None
        return (value - base) / (reference - base)

    def headline_of(self, m: Metrics) -> float | None:
        value = getattr(m, self.headline)
        return None if value is None else float(value)


def _clean(v: float) -> float | None:
    return v if np.isfinite(v) else None


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x − mean) / std as the networks' input layer does it (a constant column stays centred)."""
    return (x - mean) / np.where(std > 1e-12, std, 1.0)
