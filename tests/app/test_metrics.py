"""The live counters: Prometheus names and units, the latency quantiles /tiers reads from the histogram
buckets, and shares over tiers. Several workers summed: tests/reliability/test_workers.py."""

from __future__ import annotations

import numpy as np
import pytest

from app.metrics import BUCKETS, Metrics


@pytest.mark.parametrize("q", [0.5, 0.99])
def test_quantiles_read_from_the_buckets_are_within_one_bucket_of_the_exact_ones(q):
    samples = np.random.default_rng(0).lognormal(mean=6.0, sigma=1.0, size=20_000)  # µs
    m = Metrics()
    m.record(("M2", "normal", "regime", float(us)) for us in samples)
    exact = float(np.quantile(samples, q))
    got = m.tiers(["M2"])["M2"].p50_us if q == 0.5 else m.tiers(["M2"])["M2"].p99_us
    step = BUCKETS[1] / BUCKETS[0]
    assert got is not None and exact / step <= got <= exact * step


def test_shares_add_up_over_tiers_and_an_idle_tier_has_no_quantiles():
    m = Metrics()
    m.record([("M0", "crisis", "regime", 100.0), *[("M2", "normal", "regime", 50.0)] * 3])
    stats = m.tiers(["M0", "M2", "M3"])
    assert stats["M0"].share == 0.25 and stats["M2"].share == 0.75
    assert stats["M3"].requests == 0 and stats["M3"].p50_us is None


def test_exposition_follows_prometheus_conventions():
    m = Metrics()
    m.record([("M3", "calm", "regime", 120.0)])
    text = m.exposition().decode()
    assert '# TYPE tiered_predictions_total counter' in text
    assert 'tiered_predictions_total{reason="regime",regime="calm",tier="M3"} 1.0' in text
    assert '# TYPE tiered_prediction_duration_seconds histogram' in text
    assert 'tiered_prediction_duration_seconds_count{tier="M3"} 1.0' in text
    assert "_created" not in text


def test_label_values_are_escaped():
    m = Metrics()
    m.family.labels('fam"1\\x').set(1)
    assert 'tiered_family_info{family_id="fam\\"1\\\\x"} 1.0' in m.exposition().decode()
