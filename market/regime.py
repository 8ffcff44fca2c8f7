"""The regime detector: signals of a window → calm / normal / volatile / crisis → tier.

Rules (thresholds come from `calibrate` on training data, so training and serving agree):
  * stress = ½·ln(volatility) + ½·ln(spread_bps): both rise together as markets get harder, and
    averaging their logs damps the noise of either alone;
  * stress ≥ crisis threshold, or a sudden volatility shift (vol_shift ≥ its threshold) while stress is
    already above the normal threshold → crisis;
  * stress ≥ volatile threshold → volatile;
  * stress < calm threshold and trend strength ≥ the calm trend floor → calm (a calm market without
    direction is treated as normal);
  * otherwise normal.
The stress thresholds are quantiles of the training windows' stress at the cumulative regime shares
(default 28%, 59%, 85%: the long-run shares of the synthetic market, a prior for real ones, where
crisis then means the most stressed 15% of windows);
the volatility-shift threshold is its 99th percentile. `calibrate` returns a plain, JSON-ready
`Thresholds`; the manifest stores it and settings may override any field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

REGIMES: tuple[str, ...] = ("calm", "normal", "volatile", "crisis")
DEFAULT_TIER_MAP: dict[str, str] = {"calm": "M3", "normal": "M2", "volatile": "M1", "crisis": "M0"}
DEFAULT_SHARES: tuple[float, float, float] = (0.28, 0.59, 0.85)  # cumulative: calm, +normal, +volatile


@dataclass(frozen=True)
class Thresholds:
    calm: float  # stress below this (with enough trend) is calm
    volatile: float  # stress at or above this is volatile
    crisis: float  # stress at or above this is crisis
    vol_shift: float  # a volatility shift at or above this, in a stressed market, is crisis
    calm_trend: float = 0.0  # minimum efficiency ratio for calm

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> Thresholds:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown regime threshold(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: float(v) for k, v in data.items()})

    def override(self, **values: float | None) -> Thresholds:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def stress(signals: np.ndarray) -> np.ndarray:
    """(B, 5) signals in features.SIGNAL_NAMES order → (B,) stress score."""
    volatility = np.maximum(signals[:, 0], 1e-6)
    spread = np.maximum(signals[:, 1], 1e-3)
    return 0.5 * np.log(volatility) + 0.5 * np.log(spread)


def calibrate(signals: np.ndarray, shares: tuple[float, float, float] = DEFAULT_SHARES) -> Thresholds:
    """Thresholds from training windows' signals at the given cumulative regime shares."""
    if not (0.0 < shares[0] < shares[1] < shares[2] < 1.0):
        raise ValueError(f"cumulative shares must rise strictly inside (0, 1), got {shares}")
    s = stress(signals)
    calm, volatile, crisis = np.quantile(s, shares)
    return Thresholds(float(calm), float(volatile), float(crisis),
                      float(np.quantile(signals[:, 4], 0.99)))


def detect(signals: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """(B, 5) signals → (B,) regime index into REGIMES."""
    s = stress(signals)
    regime = np.ones(s.shape[0], dtype=np.int8)
    regime[(s < thresholds.calm) & (signals[:, 3] >= thresholds.calm_trend)] = 0
    regime[s >= thresholds.volatile] = 2
    shifted = (signals[:, 4] >= thresholds.vol_shift) & (s >= thresholds.calm)
    regime[(s >= thresholds.crisis) | shifted] = 3
    return regime


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, k: int = len(REGIMES)) -> np.ndarray:
    """Rows are the true regime, columns the detected one."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return m


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over the regimes that occur."""
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))
