"""Live counters with prometheus-client: predictions by tier, regime and reason, latency per tier, the
family served and each tier's availability; `/metrics` exposes them and `/tiers` reads them back.

With one worker the values live in this process. With several (`app/multiproc.py` sets it up), each
worker writes its values to files in one directory and a scrape, whichever worker serves it, sums the
files of every worker that ever ran in this service's life: a counter never goes backwards, whichever
worker answers, and a dead worker's counts stay in the sum. The family and availability gauges are
per worker (a `pid` label), and the supervisor removes a dead worker's, so a disagreement between
workers shows.

Names follow Prometheus' conventions: a `tiered_` prefix, base units (seconds), `_total` on counters.
Latency buckets are spaced by √2 from 2^-16 s (15 µs) to 2^4 s (16 s), so the p50 and p99 that
`/tiers` reads from them are within about 20% of the exact ones.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from app.registry import Family

# `_created` series exist in one process only (multiprocess mode has none): leave them out everywhere.
disable_created_metrics()

BUCKETS = tuple(2.0 ** (k / 2) for k in range(-32, 9))
LATENCY = "tiered_prediction_duration_seconds"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class TierStats:
    requests: int
    share: float
    p50_us: float | None
    p99_us: float | None


class Metrics:
    def __init__(self, directory: Path | None = None) -> None:
        """`directory`: the multiprocess directory when several workers serve, else None."""
        self.directory = directory
        self.registry = CollectorRegistry()  # this process's own metrics; others register theirs here too
        self.predictions = Counter("tiered_predictions", "Predictions served, by tier, regime and routing "
                                   "reason (regime none, reason direct: Open Inference Protocol calls).",
                                   ["tier", "regime", "reason"], registry=self.registry)
        self.latency = Histogram(LATENCY, "Server time per prediction, from the decoded request to the "
                                 "model's answer, by tier.", ["tier"], buckets=BUCKETS,
                                 registry=self.registry)
        self.family = Gauge("tiered_family_info", "The model family each worker serves (1) or served (0).",
                            ["family_id"], registry=self.registry, multiprocess_mode="liveall")
        self.available = Gauge("tiered_tier_available", "Whether the tier loaded and verified (1) or not "
                               "(0).", ["tier"], registry=self.registry, multiprocess_mode="liveall")
        self.out_of_range = Counter("tiered_out_of_range", "Windows outside the family's training range, "
                                    "by the tier they were routed to and what was done: flagged (answered "
                                    "with the flag) or refused (422).", ["tier", "action"],
                                    registry=self.registry)
        self._family_id: str | None = None
        # prometheus-client validates the label values on every labels() call: its children are kept here.
        self._histograms: dict[str, Histogram] = {}
        self._counters: dict[tuple[str, str, str], Counter] = {}
        self._before_scrape: list[Callable[[], None]] = []

    def before_scrape(self, update: Callable[[], None]) -> None:
        """Call `update` before each scrape this process serves (to bring values kept elsewhere in)."""
        self._before_scrape.append(update)

    def record(self, predictions: Iterable[tuple[str, str, str, float]]) -> None:
        """Predictions served, each as (tier, regime, reason, latency in µs)."""
        counts: Tally[tuple[str, str, str]] = Tally()
        for tier, regime, reason, latency_us in predictions:
            counts[(tier, regime, reason)] += 1
            if tier not in self._histograms:
                self._histograms[tier] = self.latency.labels(tier)
            self._histograms[tier].observe(latency_us / 1e6)
        for labels, n in counts.items():
            if labels not in self._counters:
                self._counters[labels] = self.predictions.labels(*labels)
            self._counters[labels].inc(n)

    def outside(self, counts: Tally[tuple[str, str]]) -> None:
        """Windows out of the training range, counted by (tier, action)."""
        for labels, n in counts.items():
            self.out_of_range.labels(*labels).inc(n)

    def serving(self, family: Family) -> None:
        """The family this worker serves from now on, and which of its tiers are available."""
        if self._family_id is not None and self._family_id != family.family_id:
            self.family.labels(self._family_id).set(0)
        self._family_id = family.family_id
        self.family.labels(family.family_id).set(1)
        for name, tier in family.tiers.items():
            self.available.labels(name).set(int(tier.available))

    def exposition(self) -> bytes:
        """The Prometheus text format, every worker summed."""
        for update in self._before_scrape:
            update()
        return generate_latest(self._scraped())

    def _scraped(self) -> CollectorRegistry:
        if self.directory is None:
            return self.registry
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.directory))
        return registry

    def collect(self) -> list[Metric]:
        """Every metric's current samples, every worker summed."""
        return list(self._scraped().collect())

    def tiers(self, names: list[str]) -> dict[str, TierStats]:
        """Requests, share and latency quantiles of each tier, over every worker."""
        buckets: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for metric in self._scraped().collect():
            if metric.name != LATENCY:
                continue
            for s in metric.samples:
                if s.name == f"{LATENCY}_bucket" and s.labels.get("tier") in buckets:
                    buckets[s.labels["tier"]].append((float(s.labels["le"]), s.value))
        counts = {name: max((c for _, c in b), default=0.0) for name, b in buckets.items()}
        total = sum(counts.values())
        return {name: TierStats(int(counts[name]), counts[name] / total if total else 0.0,
                                _quantile(sorted(b), 0.5), _quantile(sorted(b), 0.99))
                for name, b in buckets.items()}


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile in µs from cumulative (upper edge s, count) buckets, interpolated linearly inside
    its bucket as Prometheus' histogram_quantile does; None before any observation."""
    if not cumulative or cumulative[-1][1] == 0:
        return None
    rank = q * cumulative[-1][1]
    lower_edge, below = 0.0, 0.0
    for edge, count in cumulative:
        if count >= rank:
            if edge == float("inf"):
                return lower_edge * 1e6
            inside = (rank - below) / (count - below) if count > below else 1.0
            return (lower_edge + (edge - lower_edge) * inside) * 1e6
        lower_edge, below = edge, count
    return lower_edge * 1e6
