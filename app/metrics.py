"""Live counters: requests and latency per tier since the process started, and their Prometheus text.

Latency goes into a fixed log-spaced histogram (bucket edges 2^(k/8) µs, about 9% apart, from 1 µs
to ~2 minutes), so memory stays constant however long the process runs and p50/p99 are read from it
within one bucket's width. Prometheus gets every 8th edge (powers of two microseconds, in seconds).
Counters are per process: with several workers each keeps its own.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field

STEPS_PER_OCTAVE = 8
OCTAVES = 27  # 2^27 µs ≈ 134 s
N_BUCKETS = STEPS_PER_OCTAVE * OCTAVES + 1  # the last one holds everything slower


def _edge_us(k: int) -> float:
    return float(2.0 ** (k / STEPS_PER_OCTAVE))


@dataclass
class LatencyHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * N_BUCKETS)
    total: int = 0
    sum_us: float = 0.0

    def observe(self, us: float, n: int = 1) -> None:
        k = 0 if us <= 1.0 else min(math.ceil(math.log2(us) * STEPS_PER_OCTAVE), N_BUCKETS - 1)
        self.counts[k] += n
        self.total += n
        self.sum_us += us * n

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-quantile, in µs; None before any request."""
        if self.total == 0:
            return None
        rank = q * self.total
        seen = 0
        for k, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return _edge_us(k)
        return _edge_us(N_BUCKETS - 1)


@dataclass(frozen=True)
class TierStats:
    requests: int
    share: float
    p50_us: float | None
    p99_us: float | None


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_label: Counter[tuple[str, str, str]] = Counter()  # (tier, regime, reason) → requests
        self._latency: dict[str, LatencyHistogram] = {}
        self._total = 0

    def record(self, tier: str, regime: str, reason: str, latency_us: float, n: int = 1) -> None:
        with self._lock:
            self._by_label[(tier, regime, reason)] += n
            self._latency.setdefault(tier, LatencyHistogram()).observe(latency_us, n)
            self._total += n

    def tier(self, name: str) -> TierStats:
        with self._lock:
            hist = self._latency.get(name, LatencyHistogram())
            share = hist.total / self._total if self._total else 0.0
            return TierStats(hist.total, share, hist.quantile(0.5), hist.quantile(0.99))

    def prometheus(self, family_id: str, tiers: dict[str, bool]) -> str:
        """Prometheus text format 0.0.4; `tiers` maps each tier of the family to its availability."""
        lines = [
            "# HELP tiered_family_info The model family being served.",
            "# TYPE tiered_family_info gauge",
            f'tiered_family_info{{family_id="{_escape(family_id)}"}} 1',
            "# HELP tiered_tier_available Whether the tier loaded and verified (1) or not (0).",
            "# TYPE tiered_tier_available gauge",
            *(f'tiered_tier_available{{tier="{_escape(t)}"}} {int(ok)}' for t, ok in tiers.items()),
            "# HELP tiered_predictions_total Predictions served, by tier, regime and routing reason.",
            "# TYPE tiered_predictions_total counter",
        ]
        with self._lock:
            for (tier, regime, reason), n in sorted(self._by_label.items()):
                labels = f'tier="{_escape(tier)}",regime="{_escape(regime)}",reason="{_escape(reason)}"'
                lines.append(f"tiered_predictions_total{{{labels}}} {n}")
            lines += ["# HELP tiered_latency_seconds Server time per prediction, by tier.",
                      "# TYPE tiered_latency_seconds histogram"]
            for name, hist in sorted(self._latency.items()):
                tier = _escape(name)
                cumulative = 0
                for k, count in enumerate(hist.counts[:-1]):
                    cumulative += count
                    if k % STEPS_PER_OCTAVE == 0:
                        le = f"{_edge_us(k) / 1e6:.9g}"
                        lines.append(f'tiered_latency_seconds_bucket{{tier="{tier}",le="{le}"}} {cumulative}')
                lines += [f'tiered_latency_seconds_bucket{{tier="{tier}",le="+Inf"}} {hist.total}',
                          f'tiered_latency_seconds_sum{{tier="{tier}"}} {hist.sum_us / 1e6:.9g}',
                          f'tiered_latency_seconds_count{{tier="{tier}"}} {hist.total}']
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
