"""Shadow scoring: a sample of routed answers run again on every larger tier, after the answer is sent.

    shadow = Shadow(rate=0.01, registry=metrics.registry)
    shadow.sampled()                       # this answer is shadowed? (a draw at `rate`; 0 never, 1 always)
    shadow.run(records)                    # each record's larger tiers, one onnxruntime run per tier

The data plane keeps a sampled answer's feature row in a `Served` record (`app/served.py`), which runs
here in a later turn of the event loop than the one that answers, so a shadow run never delays or fails
the request it samples. Each record is compared with every larger available tier on the same row:

  * the absolute difference of the outputs (the value, or for a target with classes the mean absolute
    difference of the class probabilities);
  * agreement: the same sign (a signed target such as a return) or the same likeliest class; other
    targets (a log volatility is always negative) have no agreement.
Counted per routed tier, shadow tier and regime in Prometheus (`tiered_shadow_*`), summed over workers;
`/tiers/{name}` reads them back as `live.shadow`. A followed symbol's bars are shadowed on every tier
whatever the rate (`Served.everywhere`): their realised quality compares the tiers on the same bars.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Metric

from app.registry import Family
from app.schemas import ShadowStats

if TYPE_CHECKING:
    from app.served import Served

log = logging.getLogger("app.shadow")

COMPARED = "tiered_shadow_comparisons"
DIFFERENCE = "tiered_shadow_abs_difference"
AGREED = "tiered_shadow_agreements"


class Shadow:
    def __init__(self, rate: float, registry: CollectorRegistry, seed: int | None = None) -> None:
        assert 0.0 <= rate <= 1.0, f"shadow rate {rate} is not a fraction"
        self.rate = rate
        self._draw = random.Random(seed).random
        labels = ["tier", "shadow", "regime"]
        self.compared = Counter(COMPARED, "Routed answers compared with a larger tier's output on the "
                                "same features, by routed tier, shadow tier and regime.", labels,
                                registry=registry)
        self.difference = Counter(DIFFERENCE, "Sum of the absolute differences between the routed and the "
                                  "shadow tier's outputs (divide by tiered_shadow_comparisons_total for the "
                                  "mean).", labels, registry=registry)
        self.agreed = Counter(AGREED, "Comparisons where the shadow tier agreed (same sign of a signed "
                              "target, same likeliest class).", labels, registry=registry)
        self.failed = Counter("tiered_shadow_failures", "Shadow runs that failed (the answers they sampled "
                              "were sent all the same).", ["tier"], registry=registry)

    def sampled(self) -> bool:
        return self.rate > 0.0 and (self.rate >= 1.0 or self._draw() < self.rate)

    def run(self, records: list[Served]) -> None:
        """Fill every record's `shadow` outputs, one onnxruntime run per (family, tier), and count them."""
        groups: dict[tuple[int, str], list[Served]] = defaultdict(list)
        families: dict[int, Family] = {}
        for r in records:
            families[id(r.family)] = r.family
            for tier in r.shadow_tiers():
                groups[(id(r.family), tier)].append(r)
        for (key, tier), members in groups.items():
            family = families[key]
            try:
                y = family.run(tier, np.stack([r.x for r in members]))
            except Exception:  # a tier that breaks here answers nothing in the shadow; the answers stand
                log.exception("shadow run on tier %s failed", tier)
                self.failed.labels(tier).inc()
                continue
            for r, row in zip(members, y, strict=True):
                r.shadow[tier] = row
        self._count(records)

    def _count(self, records: list[Served]) -> None:
        for r in records:
            d = r.answer.decision
            order = r.family.order
            for tier, out in r.shadow.items():
                if order.index(tier) >= order.index(d.tier):
                    continue  # only larger tiers are compared; smaller ones serve realised quality
                diff, agreed = compare(r.family, r.answer.output, out)
                labels = (d.tier, tier, d.regime)
                self.compared.labels(*labels).inc()
                self.difference.labels(*labels).inc(diff)
                if agreed:
                    self.agreed.labels(*labels).inc()


def compare(family: Family, routed: np.ndarray, shadow: np.ndarray) -> tuple[float, bool | None]:
    """(absolute difference, agreement or None where the target has none) of two output rows."""
    target = family.manifest.target
    diff = float(np.mean(np.abs(routed.astype(np.float64) - shadow.astype(np.float64))))
    if target.classes:
        return diff, bool(np.argmax(routed) == np.argmax(shadow))
    if family.target.signed:
        return diff, bool(np.sign(routed[0]) == np.sign(shadow[0]))
    return diff, None


def larger(family: Family, tier: str) -> list[str]:
    """The available tiers larger than `tier`, largest first."""
    order = family.order
    return [name for name in order[:order.index(tier)] if family.tiers[name].available]


def summary(collected: list[Metric], tier: str) -> dict[str, dict[str, ShadowStats]]:
    """From the metrics (every worker summed): shadow tier → regime, and "all" → stats of `tier`'s answers."""
    sums: dict[str, dict[tuple[str, str], float]] = {COMPARED: {}, DIFFERENCE: {}, AGREED: {}}
    for metric in collected:
        if metric.name not in sums:
            continue
        for s in metric.samples:
            if s.name.endswith("_total") and s.labels.get("tier") == tier:
                key = (s.labels["shadow"], s.labels["regime"])
                sums[metric.name][key] = sums[metric.name].get(key, 0.0) + s.value
                everywhere = (s.labels["shadow"], "all")
                sums[metric.name][everywhere] = sums[metric.name].get(everywhere, 0.0) + s.value
    out: dict[str, dict[str, ShadowStats]] = defaultdict(dict)
    for (shadow_tier, regime), n in sorted(sums[COMPARED].items()):
        if n <= 0:
            continue
        agreed = sums[AGREED].get((shadow_tier, regime))
        out[shadow_tier][regime] = ShadowStats(comparisons=int(n),
                                               mean_abs_difference=sums[DIFFERENCE].get((shadow_tier, regime),
                                                                                        0.0) / n,
                                               agreement=None if agreed is None else agreed / n)
    return dict(out)
