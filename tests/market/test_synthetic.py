"""The synthetic market: seeded, regime-switching, with a learnable signal of known strength."""

import numpy as np

from market.synthetic import REGIMES, r2_score, simulate


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


def test_every_regime_occurs_with_persistence_and_crisis_is_rare():
    m = simulate(200_000, 7)
    shares = np.bincount(m.regime, minlength=len(REGIMES)) / len(m)
    assert (shares > 0).all(), shares
    assert shares[3] < 0.10, f"crisis share {shares[3]:.3f} is not rare"
    switches = np.count_nonzero(np.diff(m.regime))
    assert len(m) / switches > 50, "regimes should persist for tens of bars"


def test_oracle_r2_is_clearly_positive_but_far_from_one():
    m = simulate(200_000, 7)
    oracle = m.oracle_r2()
    assert 0.1 < oracle < 0.4, oracle


def test_hard_regimes_are_more_volatile_and_have_wider_spreads():
    m = simulate(200_000, 7)
    ret = np.abs(np.diff(np.log(m.candles.close)))
    spread = (m.ask - m.bid) / m.candles.close
    by_regime = [(ret[m.regime[1:] == k].mean(), spread[m.regime == k].mean()) for k in range(4)]
    vols, spreads = zip(*by_regime, strict=True)
    assert list(vols) == sorted(vols) and list(spreads) == sorted(spreads)


def test_r2_score_is_one_for_a_perfect_prediction_and_zero_for_the_mean():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y, y) == 1.0
    assert abs(r2_score(y, np.full(4, y.mean()))) < 1e-12
