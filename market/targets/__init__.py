"""Targets: what a family predicts, one module per target, found and registered on import.

    from market import targets
    target = targets.get("volatility", horizon=10)    # a Target (see base.py)
    targets.names()                                   # every registered name

Every module of this package except `base` defines a subclass of `Target` decorated with `@register`;
importing the package imports them all, so adding a target is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from market.targets.base import Kind, Target, Truth

__all__ = ["Kind", "Target", "Truth", "get", "names", "register"]

_REGISTRY: dict[str, type[Target]] = {}
T = TypeVar("T", bound=type[Target])


def register(cls: T) -> T:
    """Class decorator: make the target known by its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two targets are named {cls.name!r}: {_REGISTRY[cls.name].__module__} and "
                         f"{cls.__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get(name: str, horizon: int | None = None, params: dict[str, float] | None = None) -> Target:
    """The target called `name` at `horizon` bars (None: its default), with fitted `params` if known."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown target {name!r}; known targets: {', '.join(names())}")
    return _REGISTRY[name](horizon=horizon or 0, params=dict(params or {}))


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")
