"""The regression kind: one value per window, in the target's units.

Training: y standardised with the training split's mean and std (a volatility-scaled target is first
divided by a volatility forecast from the window, `training/volscale.py`); hard loss MSE against y, soft
loss MSE against the teacher's outputs; the exported head undoes both. Metrics: R² (the
headline), MSE and, for a signed target, directional accuracy (sign of the prediction against the sign
of y, rows with y = 0 left out). Linear baseline: ridge on the standardised features, closed form, its
strength chosen on the validation split's R².
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from market import scores
from market.dataset import Dataset
from market.targets import Target
from training import volscale
from training.kinds.base import Kind, Predict, Scale, standardise

RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # λ on the Gram matrix of standardised features / n
CHUNK = 131_072


class Denormalize(nn.Module):
    """(net(x) · std + mean) · σ̂(x): the served value in the target's units (σ̂ ≡ 1 unless scaled)."""

    y_mean: Tensor
    y_std: Tensor

    def __init__(self, net: nn.Module, scale: Scale) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("y_mean", torch.tensor(scale.mean, dtype=torch.float32))
        self.register_buffer("y_std", torch.tensor(scale.std, dtype=torch.float32))
        self.volatility = None if scale.volatility is None else scale.volatility.module()

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x) * self.y_std + self.y_mean
        return out if self.volatility is None else out * self.volatility(x)


class Regression(Kind):
    name = "regression"
    headline = scores.FORMULAS[name].headline
    uses_temperature = False
    constant_name = "the training split's mean"
    linear_name = "ridge"

    def scale(self, ds: Dataset) -> Scale:
        x, y = ds.train.x, ds.train.y.astype(np.float64)
        volatility = None
        if ds.target.volatility_scaled:
            c = ds.candles
            volatility = volscale.fit(x, volscale.next_log_range(c.high, c.low, c.close, ds.train.ends))
            y = y / volatility(x)
        return Scale(float(y.mean()), float(y.std()), volatility)

    def encode(self, y: np.ndarray, x: np.ndarray, scale: Scale) -> Tensor:
        scaled = y.astype(np.float64) / scale.divisor(x)
        return torch.from_numpy(((scaled - scale.mean) / scale.std).astype(np.float32)[:, None])

    def hard_loss(self, out: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(out, target.view_as(out))

    def soft_loss(self, out: Tensor, teacher_out: Tensor, temperature: float) -> Tensor:
        return F.mse_loss(out, teacher_out)

    def head(self, net: nn.Module, scale: Scale) -> nn.Module:
        return Denormalize(net, scale)

    def loss(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (y.astype(np.float64) - pred[:, 0]) ** 2

    def constant(self, y_train: np.ndarray, target: Target) -> np.ndarray:
        return np.array([y_train.mean(dtype=np.float64)])

    def linear(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
               target: Target) -> tuple[Predict, str, int]:
        """Ridge: w = (AᵀA/n + λI)⁻¹ Aᵀ(y − ȳ)/n on standardised features A, for every λ of the grid at
        the cost of one eigendecomposition; the λ with the best validation R² wins."""
        mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        y_mean = float(y.mean(dtype=np.float64))
        f = x.shape[1]
        gram, cross = np.zeros((f, f)), np.zeros(f)
        for i in range(0, x.shape[0], CHUNK):
            a = standardise(x[i:i + CHUNK].astype(np.float64), mean, std)
            gram += a.T @ a
            cross += a.T @ (y[i:i + CHUNK] - y_mean)
        evals, vecs = np.linalg.eigh(gram / x.shape[0])
        projected = vecs.T @ (cross / x.shape[0])
        a_val = standardise(x_val.astype(np.float64), mean, std)
        sst = float(np.sum((y_val - y_val.mean()) ** 2))
        best: tuple[float, float, np.ndarray] | None = None
        for lam in RIDGE_GRID:
            w = vecs @ (projected / (evals + lam))
            r2 = 1.0 - float(np.sum((y_val - y_mean - a_val @ w) ** 2)) / sst
            if best is None or r2 > best[0]:
                best = (r2, lam, w)
        assert best is not None
        _, lam, w = best

        def predict(features: np.ndarray) -> np.ndarray:
            return (standardise(features.astype(np.float64), mean, std) @ w + y_mean)[:, None]

        return predict, f"ridge on the {f} features (λ = {lam:g}, chosen on validation)", f + 1
