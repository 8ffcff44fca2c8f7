"""The tiers' architecture: a feed-forward network of configurable depth and width.

Every hidden layer after the first sees its predecessor's output and the (normalised) raw input
concatenated: `h_i = act(W_i [h_{i-1}, x])`. The input skip keeps the 8-layer teacher easy to train
(each layer has a short path to the features) and is what puts the default family on the research
write-up's parameter counts: 43 inputs (feature version 2) give 549,121 / 235,201 / 71,809 / 9,793
parameters for 8×256 / 6×192 / 4×128 / 2×64 (~530K / ~225K / ~70K / ~9K; M3 is 56× smaller than M0).
Without it the same shapes give about 15% fewer for M0 and 25% fewer for M3.

Input normalisation (train-split mean and std) is a buffer inside the network, and the target kind's
head (`training.kinds`: de-standardised value, or class probabilities) adds the output side, so an
exported graph takes raw features and returns the served prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# (layers, width) per tier, M0 first. Width-only keeps depth 8 and picks widths that land near the
# combined schedule's parameter counts; depth-only keeps width 256 (1 layer is the smallest it can go).
SCHEDULES: dict[str, tuple[tuple[int, int], ...]] = {
    "combined": ((8, 256), (6, 192), (4, 128), (2, 64)),
    "width": ((8, 256), (8, 160), (8, 80), (8, 20)),
    "depth": ((8, 256), (4, 256), (2, 256), (1, 256)),
}
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


@dataclass(frozen=True)
class Shape:
    layers: int
    width: int


class Standardize(nn.Module):
    """(x − mean) / std with statistics fixed at construction (buffers, not parameters)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        # A constant feature would divide by zero; leave it centred instead.
        self.register_buffer("std", torch.as_tensor(np.where(std > 1e-12, std, 1.0), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MLP(nn.Module):
    """Raw features (B, F) → normalised → `layers` hidden layers of `width` → (B, out) in training units."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, shape: Shape, out_features: int,
                 input_skip: bool = True, activation: str = "relu") -> None:
        super().__init__()
        f = int(mean.shape[0])
        self.shape, self.input_skip = shape, input_skip
        self.normalize = Standardize(mean, std)
        skip = f if input_skip else 0
        self.hidden = nn.ModuleList(
            [nn.Linear(f, shape.width)]
            + [nn.Linear(shape.width + skip, shape.width) for _ in range(shape.layers - 1)]
        )
        self.act = ACTIVATIONS[activation]()
        self.head = nn.Linear(shape.width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)  # (B, F)
        h = self.act(self.hidden[0](x))  # (B, W)
        for layer in self.hidden[1:]:
            h = self.act(layer(torch.cat([h, x], dim=1) if self.input_skip else h))
        return self.head(h)


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def family_shapes(schedule: str, shapes: list[tuple[int, int]] | None = None) -> list[Shape]:
    return [Shape(layers, width) for layers, width in (shapes or SCHEDULES[schedule])]
