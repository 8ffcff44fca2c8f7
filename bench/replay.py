"""A held-out stream replayed through routing policies: which tier answers each row, how good the answers
are and what they cost.

Every tier predicts every row once; a policy only chooses, per row, whose prediction counts, so many
policies (the router at its default thresholds, always one tier, the oracle router, every point of a
threshold sweep) are scored without running a model again. Quality comes from the training package's
own scorer (`training.evaluate.Scorer`: R², directional accuracy, per regime: the true regime on the
synthetic market, the detected one on real candles), so the figures match the family's report. Compute
is the mean of the tiers' measured batch-1 onnxruntime µs over the rows each one answers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.registry import Family
from app.router import route
from market.regime import REGIMES, Thresholds, detect, stress
from training.evaluate import Scorer

CHUNK = 65_536


@dataclass(frozen=True)
class Stream:
    """A split's rows with every tier's prediction and what each tier costs."""

    family: Family
    x: np.ndarray  # (n, F) float32
    signals: np.ndarray  # (n, 5)
    predictions: np.ndarray  # (K, n, out) in family order (largest tier first)
    latency_us: np.ndarray  # (K,) batch-1 µs per call
    scorer: Scorer

    @property
    def tiers(self) -> tuple[str, ...]:
        return self.family.order

    def tier_index(self, regimes: np.ndarray) -> np.ndarray:
        """Regime index per row → tier index per row, through the app's router (no override, no budget)."""
        chosen = [self.tiers.index(route(self.family, name).tier) for name in REGIMES]
        return np.asarray(chosen)[regimes]

    def mapped(self, tier_map: dict[str, str], regimes: np.ndarray) -> np.ndarray:
        """Regime index per row → tier index per row under another regime → tier map (all tiers loaded)."""
        return np.asarray([self.tiers.index(tier_map[name]) for name in REGIMES])[regimes]

    def routed(self, thresholds: Thresholds) -> np.ndarray:
        return self.tier_index(detect(self.signals, thresholds))

    def always(self, tier: str) -> np.ndarray:
        return np.full(len(self.x), self.tiers.index(tier))


def predict_all(family: Family, x: np.ndarray) -> np.ndarray:
    out = []
    for tier in family.order:
        out.append(np.concatenate([family.run(tier, x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)]))
    return np.stack(out)


def evaluate(stream: Stream, chosen: np.ndarray) -> dict[str, Any]:
    """Quality and compute of the policy that answers row i with tier `chosen[i]`."""
    pred = stream.predictions[chosen, np.arange(len(chosen))]
    overall, per_regime = stream.scorer.score(pred)
    shares = np.bincount(chosen, minlength=len(stream.tiers)) / len(chosen)
    return {
        "quality": stream.scorer.headline(overall), "r2": overall.r2,
        "directional_accuracy": overall.directional_accuracy,
        "accuracy": overall.accuracy, "compute_us": float(stream.latency_us[chosen].mean()),
        "shares": dict(zip(stream.tiers, shares.tolist(), strict=True)),
        "per_regime": {name: {"quality": stream.scorer.headline(m), "r2": m.r2,
                              "directional_accuracy": m.directional_accuracy, "rows": m.rows}
                       for name, m in per_regime.items()},
    }


def sweep(stream: Stream, shifts: int, scales: tuple[float, ...]) -> list[dict[str, Any]]:
    """The router over a grid of stress thresholds: all three moved by a shift δ (from nearly every row
    crisis to nearly every row calm) and their spacing around the volatile threshold scaled by s."""
    th = stream.family.thresholds
    s = stress(stream.signals)
    lo, hi = float(np.quantile(s, 0.005)) - th.crisis, float(np.quantile(s, 0.995)) - th.calm
    deltas = sorted({*np.linspace(lo, hi, shifts).round(6).tolist(), 0.0})
    points = []
    for scale in scales:
        for delta in deltas:
            spaced = lambda t, d=delta, s=scale: th.volatile + s * (t - th.volatile) + d  # noqa: E731
            moved = replace(th, calm=spaced(th.calm), volatile=th.volatile + delta, crisis=spaced(th.crisis))
            e = evaluate(stream, stream.routed(moved))
            points.append({"shift": delta, "scale": scale, "quality": e["quality"], "r2": e["r2"],
                           "compute_us": e["compute_us"], "shares": e["shares"]})
    return points
