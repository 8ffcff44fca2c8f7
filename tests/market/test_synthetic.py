"""The synthetic market: seeded, regime-switching, with a signal of known strength that a model can read
exactly from the window (so the oracle is attainable), and that is harder where markets are harder."""

import numpy as np
import pytest

from market import features
from market.synthetic import (
    INPUT_NAMES,
    ORACLE_R2,
    REGIMES,
    SIGMA,
    law,
    r2_score,
    simulate,
)


@pytest.fixture(scope="module")
def long_market():
    return simulate(300_000, 7)


def test_same_seed_gives_the_same_market_and_another_seed_does_not():
    a, b, c = simulate(5_000, 3), simulate(5_000, 3), simulate(5_000, 4)
    assert np.array_equal(a.candles.close, b.candles.close)
    assert np.array_equal(a.regime, b.regime)
    assert not np.array_equal(a.candles.close, c.candles.close)


def test_candles_obey_every_invariant():
    m = simulate(20_000, 1)
    m.candles.validate()
    assert (m.bid < m.ask).all()
    assert (m.bid_size > 0).all() and (m.ask_size > 0).all()
    assert m.candles.taker_buy_volume is not None
    assert (m.candles.taker_buy_volume <= m.candles.volume).all()


def test_regimes_persist_the_hard_ones_are_well_represented_and_crisis_is_the_rarest(long_market):
    shares = np.bincount(long_market.regime, minlength=len(REGIMES)) / len(long_market)
    assert (shares > 0).all(), shares
    assert shares[3] == shares.min() and 0.08 < shares[3] < 0.22, shares
    assert shares[2] + shares[3] > 0.3, f"hard regimes hold only {shares[2] + shares[3]:.2f} of the bars"
    switches = np.count_nonzero(np.diff(long_market.regime))
    assert len(long_market) / switches > 50, "regimes should persist for tens of bars"


def test_each_regime_reaches_its_planted_oracle_r2(long_market):
    m = long_market
    y, mu, g = m.next_return[:-1], m.expected_return[:-1], m.regime[:-1]
    for k, name in enumerate(REGIMES):
        assert r2_score(y[g == k], mu[g == k]) == pytest.approx(ORACLE_R2[k], abs=0.02), name


def test_the_oracle_is_computable_from_the_window_the_regime_and_sigma():
    """The signal's inputs are the feature pipeline's own columns: a model given the true expectation's
    ingredients from the window (plus the true regime and σ) reproduces μ, hence scores the oracle R²."""
    m = simulate(6_000, 5)
    mid = (m.ask + m.bid) / 2
    ends = np.arange(features.WINDOW - 1, len(m) - 1)
    f = features.compute(features.sliding_windows(m.candles, ends, (m.ask - m.bid) / mid * 1e4,
                                                  (m.bid_size - m.ask_size) / (m.bid_size + m.ask_size)))
    u = np.stack([f.x[:, features.FEATURE_NAMES.index(n)].astype(np.float64) for n in INPUT_NAMES], axis=1)
    mu = m.sigma[ends] * law().signal(m.regime[ends], u)
    # float32 features: agreement to a few parts in a million of the signal's scale.
    np.testing.assert_allclose(mu, m.expected_return[ends], atol=1e-5 * m.sigma[ends].max())
    y = m.next_return[ends]
    assert r2_score(y, mu) == pytest.approx(r2_score(y, m.expected_return[ends]), abs=1e-4)


def test_hard_regimes_are_more_volatile_and_have_wider_spreads(long_market):
    m = long_market
    ret = np.abs(np.diff(np.log(m.candles.close)))
    spread = (m.ask - m.bid) / m.candles.close
    by_regime = [(ret[m.regime[:-1] == k].mean(), spread[m.regime == k].mean()) for k in range(4)]
    vols, spreads = zip(*by_regime, strict=True)
    assert list(vols) == sorted(vols) and list(spreads) == sorted(spreads)
    assert np.median(m.sigma[m.regime == 3]) == pytest.approx(SIGMA[3], rel=0.1)


def test_the_law_is_the_same_for_every_path_seed():
    a = law()
    assert a is law()
    assert a.terms.shape[1] == 3 and len(set(map(tuple, a.terms))) == len(a.terms)


def test_r2_score_is_one_for_a_perfect_prediction_and_zero_for_the_mean():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y, y) == 1.0
    assert abs(r2_score(y, np.full(4, y.mean()))) < 1e-12
