"""The router: which tier answers a request, and why.

In this order:
  1. an explicit `tier` from the client: that tier when it is available (reason `override`), else its
     nearest available neighbour, the larger first (reason `fallback`): the client asked for about
     that much model, not for the regime's choice;
  2. otherwise the regime detector's tier for the window (reason `regime`);
  3. a `max_latency_ms` budget moves down to the largest available tier, no larger than the one
     chosen so far, whose measured batch-1 latency fits; the fastest such tier when none fits
     (reason `budget`);
  4. a tier that is unavailable falls back to the nearest available one, the larger neighbour first
     (reason `fallback`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.errors import NoTierAvailable, UnknownTier
from app.registry import Family

Reason = Literal["regime", "override", "budget", "fallback"]


@dataclass(frozen=True)
class Route:
    tier: str  # the tier that answers
    requested: str  # the tier the override or the regime asked for
    reason: Reason


def check_tier(family: Family, name: str, field: str = "tier") -> None:
    if name not in family.tiers:
        raise UnknownTier(f"{field}: unknown tier {name!r}; this family has {list(family.order)}", field)


def route(family: Family, regime: str, override: str | None = None, budget_ms: float | None = None,
          field: str = "tier") -> Route:
    """Raise UnknownTier for a tier the family does not have, NoTierAvailable when none loaded."""
    if override is not None:
        check_tier(family, override, field)
    if not family.available:
        raise NoTierAvailable(f"no tier of family {family.family_id} is loaded; see /tiers for the reasons")
    requested = override if override is not None else family.manifest.regime.tier_map[regime]
    reason: Reason
    if override is None:
        tier, reason = family.manifest.regime.tier_map[regime], "regime"
    elif family.tiers[override].available:
        tier, reason = override, "override"
    else:
        tier, reason = nearest_available(family, override), "fallback"
    if budget_ms is not None:
        fitted = within_budget(family, tier, budget_ms)
        if fitted is not None and fitted != tier:
            tier, reason = fitted, "budget"
    if not family.tiers[tier].available:
        tier, reason = nearest_available(family, tier), "fallback"
    return Route(tier, requested, reason)


def within_budget(family: Family, tier: str, budget_ms: float) -> str | None:
    """The largest available tier no larger than `tier` that fits the budget, else the fastest of them."""
    order = family.order
    smaller = [family.tiers[name] for name in order[order.index(tier):] if family.tiers[name].available]
    if not smaller:
        return None
    for candidate in smaller:
        # Compared in milliseconds, the budget's own unit: a tier measured at exactly the budget fits.
        if candidate.latency_us is not None and candidate.latency_us / 1e3 <= budget_ms:
            return candidate.name
    return min(smaller, key=lambda t: t.latency_us or 0.0).name


def nearest_available(family: Family, tier: str) -> str:
    order = family.order
    i = order.index(tier)
    for step in range(1, len(order)):
        for j in (i - step, i + step):  # the larger neighbour (lower index) first
            if 0 <= j < len(order) and family.tiers[order[j]].available:
                return order[j]
    raise NoTierAvailable(f"no tier of family {family.family_id} is loaded; see /tiers for the reasons")
