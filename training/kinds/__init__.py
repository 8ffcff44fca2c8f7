"""The kinds of target training knows, keyed by `Target.kind`: one module per kind.

    kind = kinds.of(target)      # Regression() or Classes()
"""

from __future__ import annotations

from market.targets import Target
from training.kinds.base import Kind, Predict, Scale
from training.kinds.classes import Classes
from training.kinds.regression import Regression

__all__ = ["KINDS", "Kind", "Predict", "Scale", "of"]

KINDS: dict[str, Kind] = {k.name: k for k in (Regression(), Classes())}


def of(target: Target) -> Kind:
    if target.kind not in KINDS:
        raise ValueError(f"target {target.name} is of kind {target.kind!r}; training knows {sorted(KINDS)}")
    return KINDS[target.kind]
