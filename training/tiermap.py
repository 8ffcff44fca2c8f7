"""The regime → tier map a family routes by, learned on the validation split.

For each regime (as the detector sees the validation windows, which is how the service will see live
ones) every tier is scored with the target's headline metric (R², or balanced accuracy). A tier's skill
is its headline above the no-skill level (R² 0, balanced accuracy 1/classes). The learned map sends the
regime to the smallest tier whose skill is within `tolerance` of the best tier's:

    skill(tier) ≥ (1 − tolerance) · max over tiers of skill

and, where no tier has any skill in a regime (the best skill ≤ 0), to the smallest tier: the tiers are
interchangeable there and the cheapest one is as good as any. The write-up's fixed map (calm → M3 …
crisis → M0, `market.regime.DEFAULT_TIER_MAP`) stays a config choice; either way the evidence (each tier's
validation score per regime, the rows it rests on, the rule) goes into the manifest, so /tiers can say
why a regime goes where it goes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from market import regime
from market.targets import Target
from models.manifest import TierMapEvidence
from training.kinds import Kind

RULE = ("per regime, the smallest tier whose validation skill (headline above no skill) is at least "
        "(1 − tolerance) × the best tier's; the smallest tier where no tier has skill")


def scores(kind: Kind, target: Target, predictions: Mapping[str, np.ndarray], y: np.ndarray,
           regimes: np.ndarray) -> tuple[dict[str, dict[str, float | None]], dict[str, int]]:
    """Per regime name: tier → headline metric on the rows detected in that regime; and the row counts."""
    quality: dict[str, dict[str, float | None]] = {}
    rows: dict[str, int] = {}
    for i, name in enumerate(regime.REGIMES):
        mask = regimes == i
        rows[name] = int(mask.sum())
        if rows[name] < 2:
            continue
        quality[name] = {tier: kind.headline_of(kind.metrics(target, pred[mask], y[mask]))
                         for tier, pred in predictions.items()}
    return quality, rows


def choose(quality: Mapping[str, float | None], order: Sequence[str], no_skill: float,
           tolerance: float) -> tuple[str, str]:
    """The tier for one regime and why. `order` runs from the largest tier to the smallest."""
    skill = {t: (q - no_skill) if q is not None else -np.inf for t, q in quality.items()}
    best = max(order, key=lambda t: skill[t])
    smallest = order[-1]
    if not skill[best] > 0:
        return smallest, (f"no tier has skill here (best {best}: {_fmt(quality[best])}); the tiers are "
                          f"interchangeable, so the smallest, {smallest}")
    for tier in reversed(order):  # smallest first
        if skill[tier] >= (1.0 - tolerance) * skill[best]:
            if tier == best:
                return tier, f"{tier} is the best ({_fmt(quality[tier])}) and no smaller tier is within " \
                             f"{tolerance:.0%} of it"
            return tier, (f"{tier} ({_fmt(quality[tier])}) is within {tolerance:.0%} of the best, {best} "
                          f"({_fmt(quality[best])})")
    raise AssertionError("the best tier always qualifies")


def learn(kind: Kind, target: Target, predictions: Mapping[str, np.ndarray], y: np.ndarray,
          regimes: np.ndarray, order: Sequence[str], tolerance: float) -> TierMapEvidence:
    """The learned map with its evidence. `predictions` maps each tier (largest first in `order`) to its
    validation predictions in the target's units; `regimes` are the detector's, per validation row."""
    quality, rows = scores(kind, target, predictions, y, regimes)
    no_skill = kind.no_skill(target)
    chosen, reasons = {}, {}
    for name in regime.REGIMES:
        if name in quality:
            chosen[name], reasons[name] = choose(quality[name], order, no_skill, tolerance)
        else:  # never seen on validation: nothing to learn from, so the write-up's tier
            chosen[name] = regime.DEFAULT_TIER_MAP[name]
            reasons[name] = f"no validation window was detected as {name}; the fixed map's tier"
    return TierMapEvidence(split="validation", metric=kind.headline, tolerance=tolerance, rule=RULE,
                           quality=quality, rows=rows, chosen=chosen, reasons=reasons,
                           summary=summary(chosen, order))


def summary(chosen: Mapping[str, str], order: Sequence[str]) -> str:
    used = sorted(set(chosen.values()), key=order.index)
    if used == [order[-1]]:
        return (f"every regime goes to {order[-1]}: on validation the tiers are interchangeable here, so "
                "the smallest serves everything")
    return "; ".join(f"{r} → {t}" for r, t in chosen.items())


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
