"""Scores of predictions on one split: overall and per regime, against M0 and against the oracle.

The metrics are the target kind's (`training/kinds/`: R², MSE and directional accuracy for regression;
balanced accuracy, accuracy, log loss and named skills for classes). Per-regime rows use the true
regimes on synthetic data and the detector's regimes elsewhere. Where the simulator determines the
target's best prediction (the oracle), its scores are computed the same way, and each model's
`oracle_share` is the share of the oracle's skill above no skill it reaches; `retention` is the same
share against M0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from market import regime
from market.dataset import Dataset, Split
from market.targets import Target
from models.manifest import Metrics
from training import kinds
from training.kinds import Kind


@dataclass(frozen=True)
class Scorer:
    """Everything needed to score predictions on one split."""

    kind: Kind
    target: Target
    y: np.ndarray  # (n,) the split's target values or class indices
    regimes: np.ndarray  # (n,) index into regime.REGIMES
    oracle: Metrics | None = None  # the oracle's scores (synthetic data, where the target has one)
    regime_oracle: dict[str, Metrics] | None = None

    @classmethod
    def for_split(cls, ds: Dataset, split: Split) -> Scorer:
        true = split.true_regime
        regimes = np.asarray(true if true is not None else regime.detect(split.signals, ds.thresholds))
        plain = cls(kinds.of(ds.target), ds.target, split.y, regimes)
        best = ds.oracle(split)
        if best is None:
            return plain
        oracle, per_regime = plain.score(best)
        return cls(plain.kind, ds.target, split.y, regimes, oracle, per_regime)

    def score(self, pred: np.ndarray) -> tuple[Metrics, dict[str, Metrics]]:
        """pred: (n, width) predictions in the target's units → overall and per-regime metrics."""
        overall = self._metrics(pred, np.ones(len(self.y), dtype=bool), self.oracle)
        per_regime = {}
        for i, name in enumerate(regime.REGIMES):
            rows = self.regimes == i
            if rows.sum() > 1:
                per_regime[name] = self._metrics(pred, rows, (self.regime_oracle or {}).get(name))
        return overall, per_regime

    def headline(self, m: Metrics) -> float | None:
        return self.kind.headline_of(m)

    def with_retention(self, m: Metrics, reference: Metrics) -> Metrics:
        """m with its share of the reference's (M0's) skill; None when the reference has none."""
        share = self.kind.share(self.headline(m), self.headline(reference), self.target)
        return m.model_copy(update={"retention": share})

    def _metrics(self, pred: np.ndarray, rows: np.ndarray, oracle: Metrics | None) -> Metrics:
        m = self.kind.metrics(self.target, pred[rows], self.y[rows])
        if oracle is None:
            return m
        share = self.kind.share(self.headline(m), self.headline(oracle), self.target)
        return m.model_copy(update={"oracle_share": share})
