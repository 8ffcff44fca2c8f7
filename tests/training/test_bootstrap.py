"""Block bootstrap: the block length follows the data's autocorrelation, and the interval covers a known
difference between two models' R² about as often as it says."""

import numpy as np
import pytest

from market import targets
from training import bootstrap
from training.kinds import KINDS

REGRESSION, TARGET = KINDS["regression"], targets.get("volatility")


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A unit-variance AR(1) series."""
    e = rng.normal(0.0, np.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    out[0] = rng.normal()
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def test_the_block_length_grows_with_autocorrelation_and_respects_its_floors():
    rng = np.random.default_rng(0)
    assert bootstrap.block_length(rng.normal(size=5_000)) <= 3
    assert bootstrap.block_length(ar1(rng, 5_000, 0.9)) >= 10
    assert bootstrap.block_length(rng.normal(size=5_000), minimum=15) == 15
    assert bootstrap.block_length(rng.normal(size=50_000)) >= 50_000 / bootstrap.MAX_BLOCKS


def test_resampled_sums_keep_every_row_once_on_average():
    rng = np.random.default_rng(1)
    stats = rng.normal(size=(1_003, 3))
    r = bootstrap.Resampler.draw(len(stats), 10, resamples=2_000, seed=4)
    assert r.counts.shape == (2_000, 101) and (r.counts.sum(axis=1) == 101).all()
    np.testing.assert_allclose(r.sums(stats).mean(axis=0), stats.sum(axis=0), rtol=0.05, atol=3.0)


def interval_covers(rng: np.random.Generator, length: int | None) -> tuple[bool, float]:
    """y = s + u, s and u persistent AR(1) of unit variance: predicting s gives R² ½, predicting s/2
    gives R² ⅜, so the true difference is ⅛. Does the 95% interval cover it?"""
    n = 2_000
    s, u = ar1(rng, n, 0.95), ar1(rng, n, 0.95)
    y = s + u
    a = REGRESSION.row_stats(TARGET, s[:, None], y)
    b = REGRESSION.row_stats(TARGET, 0.5 * s[:, None], y)
    loss_difference = REGRESSION.loss(0.5 * s[:, None], y) - REGRESSION.loss(s[:, None], y)
    chosen = length or bootstrap.block_length(loss_difference)
    r = bootstrap.Resampler.draw(n, chosen, resamples=400, seed=int(rng.integers(1 << 30)))
    diff = REGRESSION.from_sums(TARGET, r.sums(a))["r2"] - REGRESSION.from_sums(TARGET, r.sums(b))["r2"]
    low, high = bootstrap.interval(diff)
    return low <= 0.125 <= high, high - low


def test_the_interval_covers_a_known_difference_with_its_stated_confidence():
    rng = np.random.default_rng(7)
    block = [interval_covers(rng, None) for _ in range(150)]
    rows = [interval_covers(rng, 1) for _ in range(50)]
    coverage = np.mean([c for c, _ in block])
    assert 0.86 <= coverage <= 0.995, coverage
    # resampling single rows ignores the persistence: intervals too narrow, coverage far below 95%
    assert np.mean([c for c, _ in rows]) < coverage - 0.15
    assert np.mean([w for _, w in rows]) < 0.6 * np.mean([w for _, w in block])


def test_an_interval_is_undefined_when_most_resamples_are():
    assert bootstrap.interval(np.full(100, np.nan)) == pytest.approx((np.nan, np.nan), nan_ok=True)
