"""The classical baselines a quant checks first, fitted on the training split only (numpy, seconds).

  mean         the training split's mean (class frequencies for a classes target), for every window;
  persistence  the target's own value over the last h bars ("no change"), where the target defines it;
  HAR          Corsi (2009): least squares of y on the target's trailing averages over 1, 5 and 22 bars
               (volatility, range; the log-volume analogue for volume), where the target defines them;
  ridge        ridge regression on the same features the networks see (multinomial logistic regression
               for classes: `logistic`), its strength chosen on the validation split.

`references` are not baselines: they read the simulator's truth, which no model can see. The oracle is
the target's exact best prediction where one exists (the expected return; the exact class
probabilities of a one-bar direction); the σ-reference, for volatility-like targets where no exact
conditional expectation exists, is a least-squares fit of y on ln σ_t (the true current volatility) on
the training split: what knowing σ_t alone gives, not the best achievable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from market.dataset import Dataset, Split
from market.targets.base import HAR_BARS
from training.kinds import Kind

SplitPredict = Callable[[Split], np.ndarray]  # a split → (n, width) predictions


@dataclass(frozen=True)
class Classical:
    name: str
    description: str
    coefficients: int
    seconds: float
    predict: SplitPredict


def fit(ds: Dataset, kind: Kind) -> list[Classical]:
    """Every baseline the target admits, fitted on ds.train (validation only picks ridge's strength)."""
    target, candles, train = ds.target, ds.candles, ds.train
    out = []
    tick = time.perf_counter()
    row = kind.constant(train.y, target)
    out.append(Classical("mean", kind.constant_name, row.size, time.perf_counter() - tick,
                         lambda s: np.tile(row, (len(s), 1))))
    if target.persistence(candles, train.ends[:1]) is not None:
        out.append(Classical("persistence", f"the target's value over the last {target.horizon} bar(s)", 0,
                             0.0, lambda s: _present(target.persistence(candles, s.ends))[:, None]))
    if target.har_terms(candles, train.ends[:1]) is not None:
        tick = time.perf_counter()
        har = least_squares(_present(target.har_terms(candles, train.ends)), train.y)
        terms = ", ".join(str(n) for n in HAR_BARS)
        out.append(Classical("HAR", f"HAR (Corsi 2009): least squares of y on its trailing averages over "
                                    f"{terms} bars", len(HAR_BARS) + 1, time.perf_counter() - tick,
                             lambda s: har(_present(target.har_terms(candles, s.ends)))))
    tick = time.perf_counter()
    linear, description, coefficients = kind.linear(train.x, train.y, ds.val.x, ds.val.y, target)
    out.append(Classical(kind.linear_name, description, coefficients, time.perf_counter() - tick,
                         lambda s: linear(s.x)))
    return out


def sigma_reference(ds: Dataset) -> SplitPredict | None:
    """Least squares of y on ln σ_t over the training split, where the target asks for it and σ is known."""
    sigma = ds.train.truth.sigma
    if not ds.target.sigma_reference or sigma is None:
        return None
    fitted = least_squares(np.log(sigma)[:, None], ds.train.y)

    def predict(split: Split) -> np.ndarray:
        assert split.truth.sigma is not None, "the σ-reference needs the simulator's σ on every split"
        return fitted(np.log(split.truth.sigma)[:, None])

    return predict


def least_squares(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """OLS of y on [1, x]; returns x → (n, 1) fitted values."""
    design = np.hstack([np.ones((len(x), 1)), x.astype(np.float64)])
    coef, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    return lambda z: (np.hstack([np.ones((len(z), 1)), z.astype(np.float64)]) @ coef)[:, None]


def _present(values: np.ndarray | None) -> np.ndarray:
    assert values is not None, "the target gave this baseline's inputs for one row, so it gives them all"
    return values.astype(np.float64)
