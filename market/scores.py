"""How predictions of a target are scored: the metric formulas, numpy only, in one place.

    values = scores.score(target, pred, y)       # {"r2": ..., "mse": ..., "directional_accuracy": ...}
    scores.headline(target)                      # "r2", or "balanced_accuracy" for classes

Training scores its splits with them (`training/kinds`, whose bootstrap resamples the same per-row
sums), and the service scores live predictions against realised targets with them (`app/quality.py`),
so a live R² and a test-split R² are one formula. Every metric is a function of per-row statistics'
column sums (`row_stats` → `from_sums`).

Regression: R² (the headline), MSE and, for a signed target, directional accuracy (sign of the
prediction against the sign of y, rows with y = 0 left out). Classes: balanced accuracy (the headline:
the mean recall over the classes present, 1/classes without skill), accuracy, log loss, and the balanced
accuracy of each binary skill the target names (`Target.skills`), where a row counts if its true class is
in either group and the prediction is the group of the likeliest class among both groups' classes.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from market.targets import Target


class Formulas:
    headline: ClassVar[str]

    def row_stats(self, target: Target, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n, S) per-row statistics whose column sums determine every metric (see `from_sums`)."""
        raise NotImplementedError

    def from_sums(self, target: Target, sums: np.ndarray) -> dict[str, np.ndarray]:
        """(..., S) sums of row_stats → metric name → (...) values; NaN where undefined."""
        raise NotImplementedError

    def no_skill(self, target: Target) -> float:
        """The headline value of a forecast that knows nothing."""
        raise NotImplementedError


class RegressionFormulas(Formulas):
    headline = "r2"

    def row_stats(self, target: Target, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        y = y.astype(np.float64)
        p = pred[:, 0].astype(np.float64)
        centred = y - y.mean()  # R² is shift-invariant; centring keeps the sums well conditioned
        columns = [np.ones_like(y), centred, centred * centred, (y - p) ** 2]
        if target.signed:
            moved = y != 0
            columns += [moved, moved & (np.sign(p) == np.sign(y))]
        return np.stack(columns, axis=1)

    def from_sums(self, target: Target, sums: np.ndarray) -> dict[str, np.ndarray]:
        n, s1, s2, sse = (sums[..., i] for i in range(4))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {"r2": 1.0 - sse / (s2 - s1 * s1 / n), "mse": sse / n}
            if target.signed:
                out["directional_accuracy"] = sums[..., 5] / sums[..., 4]
        return out

    def no_skill(self, target: Target) -> float:
        return 0.0


class ClassesFormulas(Formulas):
    headline = "balanced_accuracy"

    def row_stats(self, target: Target, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        c = target.width
        chosen = pred.argmax(axis=1)
        correct = chosen == y
        p_true = pred[np.arange(len(y)), y]
        columns = [np.ones(len(y)), correct, -np.log(np.maximum(p_true, 1e-12))]
        for k in range(c):
            columns += [y == k, (y == k) & correct]
        for a, b in _skill_groups(target):
            both = np.concatenate([a, b])
            picked = both[pred[:, both].argmax(axis=1)]  # the likeliest class among both groups'
            for group in (a, b):
                truly, said = np.isin(y, group), np.isin(picked, group)
                columns += [truly, truly & said]
        return np.stack(columns, axis=1).astype(np.float64)

    def from_sums(self, target: Target, sums: np.ndarray) -> dict[str, np.ndarray]:
        c = target.width
        n = sums[..., 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = {"accuracy": sums[..., 1] / n, "log_loss": sums[..., 2] / n,
                   "balanced_accuracy": _mean_recall(sums[..., 3:3 + 2 * c])}
        at = 3 + 2 * c
        for name in target.skills:
            out[f"skill:{name}"] = _mean_recall(sums[..., at:at + 4])
            at += 4
        return out

    def no_skill(self, target: Target) -> float:
        return 1.0 / target.width


FORMULAS: dict[str, Formulas] = {"regression": RegressionFormulas(), "classes": ClassesFormulas()}


def of(target: Target) -> Formulas:
    if target.kind not in FORMULAS:
        raise ValueError(f"target {target.name} is of kind {target.kind!r}; scores know {sorted(FORMULAS)}")
    return FORMULAS[target.kind]


def headline(target: Target) -> str:
    return of(target).headline


def score(target: Target, pred: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Every metric of (n, width) predictions against (n,) y; None where undefined (e.g. no rows)."""
    if len(y) == 0:
        return {}
    f = of(target)
    values = f.from_sums(target, f.row_stats(target, pred, y).sum(axis=0))
    return {name: (float(v) if np.isfinite(v) else None) for name, v in values.items()}


def _skill_groups(target: Target) -> list[tuple[np.ndarray, np.ndarray]]:
    index = {name: i for i, name in enumerate(target.classes)}
    return [(np.array([index[n] for n in a]), np.array([index[n] for n in b]))
            for a, b in target.skills.values()]


def _mean_recall(pairs: np.ndarray) -> np.ndarray:
    """(..., 2k) alternating (count, correct) per class → mean recall over the classes that occur."""
    count, hit = pairs[..., 0::2], pairs[..., 1::2]
    present = count > 0
    recall = np.divide(hit, count, out=np.zeros_like(hit), where=present)
    k = present.sum(axis=-1)
    return np.divide(recall.sum(axis=-1), k, out=np.full(k.shape, np.nan), where=k > 0)
