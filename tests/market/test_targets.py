"""Targets: y comes from the bars after the window only, every target is registered and sized, the
direction's band is fitted on training windows and scaled by trailing volatility, and the oracles
read the simulator's truth correctly."""

import dataclasses
import math

import numpy as np
import pytest

from market import features, targets
from market.candles import Candles
from market.sources import synthetic_source
from market.synthetic import simulate
from market.targets import Truth

NAMES = ("direction", "range", "return", "volatility", "volume")
ENDS = np.array([300, 777, 1500])


@pytest.fixture(scope="module")
def candles() -> Candles:
    return simulate(3_000, 5).candles


def shocked(c: Candles, end: int, jump: float, volume: float = 1.0, stretch: float = 1.0) -> Candles:
    """The series with every bar after `end` moved by a price jump (high stretched, volume scaled):
    the bars up to `end` are untouched."""
    after = np.arange(len(c)) > end
    factor = np.where(after, math.exp(jump), 1.0)
    more = np.where(after, volume, 1.0)
    return dataclasses.replace(
        c, open=c.open * factor, high=c.high * factor * np.where(after, stretch, 1.0), low=c.low * factor,
        close=c.close * factor, volume=c.volume * more,
        taker_buy_volume=None if c.taker_buy_volume is None else c.taker_buy_volume * more)


def window_features(c: Candles, end: int) -> np.ndarray:
    return features.compute(features.sliding_windows(c, np.array([end]))).x[0]


def test_every_target_is_registered_with_its_units_and_output_width():
    assert targets.names() == NAMES
    for name in NAMES:
        t = targets.get(name)
        assert t.units and t.description and t.horizon == t.default_horizon >= 1
        assert t.width == (len(t.classes) if t.classes else 1)
    assert targets.get("direction").width == 3 and targets.get("volatility", 10).horizon == 10


def test_an_unknown_target_or_a_horizon_beyond_the_window_is_refused():
    with pytest.raises(ValueError, match="known targets: direction, range"):
        targets.get("sharpe")
    with pytest.raises(ValueError, match="use 1 to 47"):
        targets.get("volatility", 48)


@pytest.mark.parametrize("name", NAMES)
def test_y_comes_from_the_future_bars_only(candles, name):
    """Changing the bars after a window's end changes its y and leaves its features alone."""
    target = targets.get(name).fit(candles, np.arange(100, 2_000))
    for end in ENDS:
        before = target.y(candles, np.array([end]))
        outcomes = set()
        for jump in (-0.05, 0.05):
            future = shocked(candles, end, jump, volume=4.0, stretch=1.02)
            np.testing.assert_array_equal(window_features(future, end), window_features(candles, end))
            outcomes.add(float(target.y(future, np.array([end]))[0]))
        assert outcomes - {float(before[0])}, f"{name}: y at {end} ignores the bars after the window"


@pytest.mark.parametrize("name", NAMES)
def test_y_at_a_window_end_ignores_bars_further_ahead_than_its_horizon(candles, name):
    target = targets.get(name).fit(candles, np.arange(100, 2_000))
    end = int(ENDS[1])
    far = shocked(candles, end + target.horizon, 0.08, volume=5.0, stretch=1.05)
    np.testing.assert_array_equal(target.y(far, np.array([end])), target.y(candles, np.array([end])))


def test_the_direction_band_puts_a_third_of_training_windows_flat_in_units_of_trailing_volatility(candles):
    target = targets.get("direction", 3)
    with pytest.raises(ValueError, match="fit"):
        target.y(candles, ENDS)
    fitted = target.fit(candles, np.arange(100, 2_500))
    shares = np.bincount(fitted.y(candles, np.arange(100, 2_500)), minlength=3) / 2_400
    assert shares[1] == pytest.approx(1 / 3, abs=0.01) and shares.min() > 0.25
    # the same price path at ten times the volatility gets the same classes: the band is in σ units
    wild = dataclasses.replace(candles, close=candles.close[0] * (candles.close / candles.close[0]) ** 10)
    wild = dataclasses.replace(wild, open=np.r_[wild.close[0], wild.close[:-1]],
                               high=np.maximum(wild.close, np.r_[wild.close[0], wild.close[:-1]]),
                               low=np.minimum(wild.close, np.r_[wild.close[0], wild.close[:-1]]))
    ends = np.arange(100, 2_500)
    np.testing.assert_array_equal(fitted.y(wild, ends), fitted.y(candles, ends))


def test_the_simulators_sigma_is_the_standard_deviation_of_the_next_return():
    m = simulate(100_000, 7)
    r_next = np.diff(np.log(m.candles.close))
    z = (r_next - m.expected_return[:-1]) / m.sigma[:-1]
    assert z.mean() == pytest.approx(0.0, abs=0.01) and z.std() == pytest.approx(1.0, abs=0.01)


def test_the_return_oracle_is_the_expected_return_and_only_for_one_bar():
    src = synthetic_source(3_000, 5)
    truth = Truth(src.expected_return[ENDS], src.sigma[ENDS])
    np.testing.assert_array_equal(targets.get("return").oracle(src.candles, ENDS, truth)[:, 0],
                                  src.expected_return[ENDS])
    assert targets.get("return", 5).oracle(src.candles, ENDS, truth) is None
    assert targets.get("volatility").oracle(src.candles, ENDS, truth) is None


def test_the_direction_oracle_gives_the_gaussian_class_probabilities():
    src = synthetic_source(3_000, 5)
    target = targets.get("direction").fit(src.candles, np.arange(100, 2_000))
    ends = np.arange(100, 2_900)
    truth = Truth(src.expected_return[ends], src.sigma[ends])
    probs = target.oracle(src.candles, ends, truth)
    assert probs.shape == (len(ends), 3) and np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()
    # with no expected move, P(flat) = 2Φ(edge / σ) − 1
    still = target.oracle(src.candles, ends, Truth(np.zeros(len(ends)), truth.sigma))
    edge = target.band() * target.scale(src.candles, ends) / truth.sigma
    expected = np.array([math.erf(e / math.sqrt(2.0)) for e in edge])
    np.testing.assert_allclose(still[:, 1], expected, rtol=1e-9)
    # and on average it is calibrated: the mean probability of each class matches its share
    shares = np.bincount(target.y(src.candles, ends), minlength=3) / len(ends)
    np.testing.assert_allclose(probs.mean(axis=0), shares, atol=0.03)
