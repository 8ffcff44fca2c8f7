"""One row of a tier's output → the answer's `prediction`, in the family's target's units.

A target with classes gets its label and one probability per class; any other target one number.
The answer names the target (`target`: name, horizon, units), so a client always knows what it got.
"""

from __future__ import annotations

import numpy as np

from app.schemas import ClassPrediction, TargetInfo
from models.manifest import TargetSection


def decode(target: TargetSection, row: np.ndarray) -> float | ClassPrediction:
    """(width,) model output → the prediction: a value, or the likeliest class and every probability."""
    if not target.classes:
        return float(row[0])
    return ClassPrediction(label=target.classes[int(np.argmax(row))],
                           probabilities=dict(zip(target.classes, row.tolist(), strict=True)))


def target_info(target: TargetSection) -> TargetInfo:
    return TargetInfo(name=target.name, horizon=target.horizon, units=target.units)
