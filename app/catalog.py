"""What the service says about its family (and, for /readyz, its feeds): /tiers and /readyz read from here."""

from __future__ import annotations

from typing import Literal

from prometheus_client import Metric

from app import shadow
from app.metrics import Metrics, TierStats
from app.quality import Quality
from app.registry import Family, Tier
from app.schemas import FamilyInfo, FeedReadiness, LiveStats, Readiness, RealisedStats, TierInfo
from market import scores
from market.feeds import FeedState


def describe(family: Family, metrics: Metrics, quality: Quality | None = None) -> FamilyInfo:
    m = family.manifest
    live = metrics.tiers(list(family.tiers))
    collected = metrics.collect()
    return FamilyInfo(
        family_id=m.family_id, created_at=m.created_at, target=m.target, source=m.source,
        window=m.features.window, use_book=m.features.use_book, feature_ranges=m.features.ranges,
        thresholds=family.thresholds.to_dict(),
        tier_map=m.regime.tier_map, tier_map_source=m.regime.tier_map_source,
        tier_map_evidence=m.regime.learned, input=m.input, output=m.output,
        tiers=[describe_tier(t, live[name], collected, quality) for name, t in family.tiers.items()],
        baselines={name: b.metrics for name, b in m.baselines.items()},
        classical={name: c.metrics for name, c in m.classical.items()}, verdict=m.skill.verdict,
        headline=scores.headline(family.target),
    )


def describe_tier(tier: Tier, live: TierStats, collected: list[Metric], quality: Quality | None = None
                  ) -> TierInfo:
    e = tier.entry
    realised = {} if quality is None else {regime: RealisedStats.model_validate(stats)
                                           for regime, stats in quality.tier(e.name).items()}
    return TierInfo(
        name=e.name, role=e.role, teacher=e.teacher, layers=e.layers, width=e.width, params=e.params,
        compression=e.compression, alpha=e.alpha, temperature=e.temperature, metrics=e.metrics,
        per_regime=e.per_regime, file=e.file, sha256=e.sha256, parity_max_abs_diff=e.parity_max_abs_diff,
        available=tier.available, problem=tier.problem, latency_us=tier.latency_us,
        latency_us_at_training=e.latency_us_batch1,
        live=LiveStats(requests=live.requests, share=live.share, p50_us=live.p50_us, p99_us=live.p99_us,
                       shadow=shadow.summary(collected, e.name), realised=realised),
    )


def readiness(family: Family, feeds: dict[str, FeedState] | None = None) -> Readiness:
    """Ready when every tier serves and every followed feed is live; degraded when some tier serves."""
    available, feeds = family.available, feeds or {}
    whole = len(available) == len(family.tiers) and all(f.status == "live" for f in feeds.values())
    status: Literal["ready", "degraded", "unavailable"] = (
        "unavailable" if not available else "ready" if whole else "degraded")
    shown = {name: FeedReadiness(status=f.status, reason=f.reason) for name, f in feeds.items()}
    return Readiness(status=status, family_id=family.family_id, available=available,
                     unavailable=family.problems, feeds=shown)
