"""The classes kind: one probability per class of the target (`Target.classes`, any number of them).

Training: class indices; hard loss cross-entropy, soft loss T² · KL(softmax(t/T) ‖ softmax(s/T)) (T²
keeps gradient sizes comparable across T); the exported head is a softmax. Metrics: balanced accuracy
(the headline: the mean recall over classes, 1/classes without skill, whatever the class shares of the
test split), accuracy, log loss, and the balanced accuracy of each binary skill the target names
(`Target.skills`: e.g. flat vs moving, up vs down), where a row counts if its true class is in either
group and the prediction is the group of the likeliest class among both groups' classes. Linear
baseline: multinomial logistic regression, L2, fitted by Newton's method, its strength chosen on the
validation split's log loss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from market import scores
from market.dataset import Dataset
from market.targets import Target
from training.kinds.base import Kind, Predict, Scale, standardise

LOGISTIC_GRID = (1e-1, 1e-2, 1e-3, 1e-4)  # L2 strength per row, strong to weak (each fit starts warm)
HESSIAN_ROWS = 100_000  # Newton's curvature from an even subsample; the gradient uses every row
MAX_NEWTON = 30


class Probabilities(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.net(x), dim=1)


class Classes(Kind):
    name = "classes"
    headline = scores.FORMULAS[name].headline
    uses_temperature = True
    constant_name = "the training split's class frequencies"
    linear_name = "logistic"

    def scale(self, ds: Dataset) -> Scale:
        return Scale()

    def encode(self, y: np.ndarray, x: np.ndarray, scale: Scale) -> Tensor:
        return torch.from_numpy(y.astype(np.int64))

    def hard_loss(self, out: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(out, target)

    def soft_loss(self, out: Tensor, teacher_out: Tensor, temperature: float) -> Tensor:
        t = temperature
        kl = F.kl_div(F.log_softmax(out / t, dim=1), F.log_softmax(teacher_out / t, dim=1),
                      reduction="batchmean", log_target=True)
        return kl * t * t

    def head(self, net: nn.Module, scale: Scale) -> nn.Module:
        return Probabilities(net)

    def loss(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        return -np.log(np.maximum(pred[np.arange(len(y)), y].astype(np.float64), 1e-12))

    def constant(self, y_train: np.ndarray, target: Target) -> np.ndarray:
        return np.bincount(y_train, minlength=target.width) / len(y_train)

    def linear(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
               target: Target) -> tuple[Predict, str, int]:
        mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        design = lambda f: np.hstack([np.ones((len(f), 1)), standardise(f.astype(np.float64), mean, std)])  # noqa: E731
        a, a_val = design(x), design(x_val)
        w = np.zeros((a.shape[1], target.width - 1))  # the last class is the reference (logit 0)
        best: tuple[float, float, np.ndarray] | None = None
        for lam in LOGISTIC_GRID:
            w = _newton(a, y, w, lam, target.width)
            loss = float(self.loss(_softmax(a_val @ w), y_val).mean())
            if best is None or loss < best[0]:
                best = (loss, lam, w.copy())
        assert best is not None
        _, lam, w_best = best

        def predict(features: np.ndarray) -> np.ndarray:
            return _softmax(design(features) @ w_best)

        return (predict, f"multinomial logistic regression on the {x.shape[1]} features (L2 λ = {lam:g}, "
                         "chosen on validation)", w_best.size)


def _softmax(z: np.ndarray) -> np.ndarray:
    """(n, C−1) logits against a reference class at 0 → (n, C) probabilities."""
    full = np.hstack([z, np.zeros((len(z), 1))])
    full -= full.max(axis=1, keepdims=True)
    e = np.exp(full)
    return e / e.sum(axis=1, keepdims=True)


def _newton(a: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float, classes: int) -> np.ndarray:
    """Minimise mean cross-entropy + λ/2 ‖w‖² (intercepts unpenalised) from `w`, by Newton steps with
    step halving; the curvature comes from an even subsample of at most HESSIAN_ROWS rows."""
    n, d = a.shape
    k = classes - 1
    onehot = np.eye(classes)[y][:, :k]
    penalty = np.full(d, lam)
    penalty[0] = 0.0
    stride = max(1, n // HESSIAN_ROWS)
    sub = a[::stride]

    def objective(v: np.ndarray) -> float:
        p = _softmax(a @ v)
        fit = -np.log(np.maximum(p[np.arange(n), y], 1e-300)).mean()
        return float(fit + 0.5 * np.sum(penalty[:, None] * v * v))

    current = objective(w)
    for _ in range(MAX_NEWTON):
        p = _softmax(a @ w)[:, :k]
        grad = (a.T @ (p - onehot)) / n + penalty[:, None] * w  # (d, k)
        ps = _softmax(sub @ w)[:, :k]
        hess = np.zeros((d * k, d * k))
        for i in range(k):
            for j in range(i, k):
                weight = ps[:, i] * ((i == j) - ps[:, j])
                block = (sub * weight[:, None]).T @ sub / len(sub)
                hess[i * d:(i + 1) * d, j * d:(j + 1) * d] = block
                hess[j * d:(j + 1) * d, i * d:(i + 1) * d] = block
        hess += np.diag(np.tile(penalty, k)) + 1e-10 * np.eye(d * k)
        step = np.linalg.solve(hess, grad.T.ravel()).reshape(k, d).T
        size = 1.0
        while size > 1e-4:
            trial = w - size * step
            value = objective(trial)
            if value <= current:
                break
            size /= 2
        else:
            return w
        w, improved = trial, current - value
        current = value
        if improved < 1e-10:
            break
    return w
