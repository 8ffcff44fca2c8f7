"""Regime hysteresis: holds a regime through noise at a threshold, releases it on a clear crossing or
a lasting one, and agrees with the plain detector when turned off."""

import numpy as np
import pytest

from market.hysteresis import Hysteresis, HysteresisSettings
from market.regime import REGIMES, Thresholds, detect

# stress = ½ ln(volatility) + ½ ln(spread); with spread = volatility, stress = ln(volatility).
TH = Thresholds(calm=1.0, volatile=2.0, crisis=3.0, vol_shift=50.0)
CALM, NORMAL, VOLATILE, CRISIS = range(4)


def signals(*stress: float, vol_shift: float = 1.0) -> np.ndarray:
    v = np.exp(np.asarray(stress, dtype=np.float64))
    return np.stack([v, v, np.zeros_like(v), np.full_like(v, 0.5), np.full_like(v, vol_shift)], axis=1)


def steps(h: Hysteresis, *stress: float) -> list[tuple[str, bool]]:
    return [(REGIMES[s.regime], s.held) for s in map(h.update, signals(*stress))]


def test_noise_around_a_threshold_is_held_in_the_regime_already_in_force():
    h = Hysteresis(TH, HysteresisSettings(margin=0.2, bars=3))
    assert steps(h, 1.5, 2.05, 1.95, 2.1, 1.9) == [
        ("normal", False), ("normal", True), ("normal", False), ("normal", True), ("normal", False)]


def test_a_crossing_by_the_margin_changes_the_regime_at_once():
    h = Hysteresis(TH, HysteresisSettings(margin=0.2, bars=5))
    assert steps(h, 1.5, 2.25) == [("normal", False), ("volatile", False)]
    assert steps(h, 1.9, 1.75) == [("volatile", True), ("normal", False)]


def test_a_crossing_that_lasts_n_bars_changes_the_regime_on_the_nth():
    h = Hysteresis(TH, HysteresisSettings(margin=0.5, bars=3))
    assert steps(h, 1.5, 2.1, 2.1, 2.1, 2.1) == [
        ("normal", False), ("normal", True), ("normal", True), ("volatile", False), ("volatile", False)]


def test_the_count_restarts_when_the_signal_comes_back():
    h = Hysteresis(TH, HysteresisSettings(margin=0.5, bars=3))
    held = steps(h, 1.5, 2.1, 2.1, 1.5, 2.1, 2.1)
    assert [r for r, _ in held] == ["normal"] * 6


def test_a_jump_past_two_thresholds_moves_as_far_as_the_margin_allows():
    h = Hysteresis(TH, HysteresisSettings(margin=0.2, bars=9))
    # 3.1 is past crisis by only 0.1 but past volatile by 1.1: volatile now, held from crisis.
    assert steps(h, 1.5, 3.1) == [("normal", False), ("volatile", True)]
    assert steps(h, 3.3) == [("crisis", False)]


def test_the_other_detector_rules_still_apply_a_volatility_shift_is_crisis():
    h = Hysteresis(TH, HysteresisSettings(margin=0.2, bars=9))
    h.update(signals(2.5)[0])
    assert h.update(signals(2.5, vol_shift=80.0)[0]).regime == CRISIS


@pytest.mark.parametrize("settings", [HysteresisSettings(margin=0.0, bars=4), HysteresisSettings(margin=1.0,
                                                                                                 bars=1)])
def test_turned_off_it_is_the_plain_detector_bar_for_bar(settings):
    rng = np.random.default_rng(3)
    stress = np.cumsum(rng.normal(0, 0.3, 500)) % 4.0
    regime, detected, held = Hysteresis(TH, settings).run(signals(*stress))
    assert np.array_equal(detected, detect(signals(*stress), TH))
    assert np.array_equal(regime, detected) and not held.any()


def test_run_over_a_series_equals_update_bar_by_bar_and_flaps_less():
    rng = np.random.default_rng(4)
    stress = 2.0 + rng.normal(0, 0.04, 2000)  # hovering at the volatile threshold, inside the margin
    batch = Hysteresis(TH).run(signals(*stress))
    live = Hysteresis(TH)
    one_by_one = [live.update(row) for row in signals(*stress)]
    assert batch[0].tolist() == [s.regime for s in one_by_one]
    assert batch[2].tolist() == [s.held for s in one_by_one]
    assert np.count_nonzero(np.diff(batch[0])) < np.count_nonzero(np.diff(batch[1])) / 2


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="margin"):
        HysteresisSettings(margin=-0.1)
    with pytest.raises(ValueError, match="bars"):
        HysteresisSettings(bars=0)
