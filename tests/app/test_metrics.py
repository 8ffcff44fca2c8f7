"""The live counters: a bounded latency histogram whose quantiles stay within one bucket."""

from __future__ import annotations

import numpy as np
import pytest

from app.metrics import LatencyHistogram, Metrics


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_histogram_quantiles_are_within_one_bucket_of_the_exact_ones(q):
    samples = np.random.default_rng(0).lognormal(mean=6.0, sigma=1.0, size=20_000)
    hist = LatencyHistogram()
    for us in samples:
        hist.observe(float(us))
    exact = float(np.quantile(samples, q))
    got = hist.quantile(q)
    assert got is not None and exact <= got <= exact * 2 ** (1 / 8) * 1.0001


def test_histogram_memory_does_not_grow_with_requests():
    hist = LatencyHistogram()
    size = len(hist.counts)
    for us in (0.1, 1.0, 5.0, 1e3, 1e9):
        hist.observe(us)
    assert len(hist.counts) == size and hist.total == 5
    assert hist.quantile(1.0) is not None


def test_an_empty_histogram_has_no_quantiles():
    assert LatencyHistogram().quantile(0.5) is None


def test_shares_add_up_over_tiers():
    m = Metrics()
    for tier, n in (("M0", 1), ("M2", 3)):
        m.record(tier, "normal", "regime", 100.0, n=n)
    assert m.tier("M0").share == 0.25 and m.tier("M2").share == 0.75
    assert m.tier("M3").requests == 0 and m.tier("M3").p50_us is None


def test_prometheus_labels_are_escaped():
    text = Metrics().prometheus('fam"1\\x', {"M0": True})
    assert 'tiered_family_info{family_id="fam\\"1\\\\x"} 1' in text
