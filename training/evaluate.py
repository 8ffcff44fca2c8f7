"""Scores of a tier's predictions on the test split: overall and per regime, against M0 and the oracle.

Regression: MSE, R² and directional accuracy (sign of the prediction vs sign of the realised return,
rows with a zero return left out). Classification: accuracy over down / flat / up, and directional
accuracy of P(up) − P(down). Per-regime rows use the true regimes on synthetic data and the detector's
regimes elsewhere. On synthetic data the oracle (the known expected return) gives the best achievable
R², overall and per regime, and each tier's share of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from market import regime
from market.dataset import Dataset, Split, class_labels
from market.synthetic import r2_score
from models.manifest import Metrics


@dataclass(frozen=True)
class Scorer:
    """Everything needed to score predictions on one split."""

    y: np.ndarray  # (n,) realised next log returns
    labels: np.ndarray  # (n,) class index
    regimes: np.ndarray  # (n,) index into regime.REGIMES
    oracle_r2: float | None
    regime_oracle_r2: dict[str, float]
    task: str

    @classmethod
    def for_split(cls, ds: Dataset, split: Split, task: str) -> Scorer:
        true = split.true_regime
        regimes = true if true is not None else regime.detect(split.signals, ds.thresholds)
        oracle, per_regime = None, {}
        if split.expected_return is not None:
            oracle = r2_score(split.y, split.expected_return)
            for i, name in enumerate(regime.REGIMES):
                rows = regimes == i
                if rows.sum() > 1:
                    per_regime[name] = r2_score(split.y[rows], split.expected_return[rows])
        labels = class_labels(split.y, ds.flat_band)
        return cls(split.y, labels, np.asarray(regimes), oracle, per_regime, task)

    def score(self, pred: np.ndarray) -> tuple[Metrics, dict[str, Metrics]]:
        """pred: (n, 1) returns or (n, 3) class probabilities → overall and per-regime metrics."""
        overall = self._metrics(pred, np.ones(len(self.y), dtype=bool), self.oracle_r2)
        per_regime = {}
        for i, name in enumerate(regime.REGIMES):
            rows = self.regimes == i
            if rows.sum() > 1:
                per_regime[name] = self._metrics(pred, rows, self.regime_oracle_r2.get(name))
        return overall, per_regime

    def _metrics(self, pred: np.ndarray, rows: np.ndarray, oracle: float | None) -> Metrics:
        y = self.y[rows]
        moved = y != 0
        if self.task == "classification":
            p = pred[rows]
            direction = p[:, 2] - p[:, 0]
            return Metrics(accuracy=float(np.mean(p.argmax(axis=1) == self.labels[rows])),
                           directional_accuracy=_agreement(direction[moved], y[moved]), rows=int(rows.sum()))
        p = pred[rows, 0].astype(np.float64)
        r2 = r2_score(y, p)
        return Metrics(mse=float(np.mean((y - p) ** 2)), r2=r2,
                       directional_accuracy=_agreement(p[moved], y[moved]),
                       oracle_share=None if not oracle else r2 / oracle, rows=int(rows.sum()))


def _agreement(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.sign(pred) == np.sign(y))) if y.size else float("nan")


def headline(m: Metrics) -> float:
    """The number retention is measured on: R² (regression) or accuracy (classification)."""
    value = m.r2 if m.r2 is not None else m.accuracy
    assert value is not None, f"metrics without R² or accuracy: {m}"
    return value


def with_retention(m: Metrics, reference: Metrics) -> Metrics:
    ref = headline(reference)
    # Retention against a reference with no skill (R² ≤ 0) has no meaning; leave it out.
    return m.model_copy(update={"retention": headline(m) / ref if ref > 0 else None})
