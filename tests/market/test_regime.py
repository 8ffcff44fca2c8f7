"""The regime detector: calibrated from quantiles, serialisable, and right on the synthetic market."""

import json

import numpy as np
import pytest

from market import dataset, regime, targets
from market.sources import synthetic_source


@pytest.fixture(scope="module")
def data():
    return dataset.build(synthetic_source(60_000, 5), targets.get("return"))


def test_calibration_returns_plain_serialisable_thresholds_that_round_trip(data):
    th = data.thresholds
    assert th.calm < th.volatile < th.crisis
    restored = regime.Thresholds.from_dict(json.loads(json.dumps(th.to_dict())))
    assert restored == th


def test_thresholds_refuse_unknown_keys_and_accept_overrides(data):
    with pytest.raises(ValueError, match="unknown regime threshold"):
        regime.Thresholds.from_dict({**data.thresholds.to_dict(), "panic": 1.0})
    assert data.thresholds.override(crisis=9.0, calm=None).crisis == 9.0


def test_detector_agrees_with_the_true_regimes_on_held_out_data(data):
    cm = regime.confusion_matrix(data.test.true_regime, regime.detect(data.test.signals, data.thresholds))
    assert regime.balanced_accuracy(cm) >= 0.8, cm


def test_detected_shares_follow_the_calibration_quantiles_on_training_data(data):
    detected = regime.detect(data.train.signals, data.thresholds.override(vol_shift=1e9))
    shares = np.bincount(detected, minlength=4) / len(detected)
    calm, _, volatile = regime.DEFAULT_SHARES
    assert shares[0] == pytest.approx(calm, abs=0.01)
    assert shares[3] == pytest.approx(1.0 - volatile, abs=0.01)


def test_a_sudden_volatility_shift_in_a_stressed_market_is_crisis():
    th = regime.Thresholds(calm=0.0, volatile=2.0, crisis=5.0, vol_shift=1.8)
    # volatility, spread_bps, imbalance, trend, vol_shift; stress = ½ ln(vol) + ½ ln(spread)
    normal = np.array([[np.e, np.e, 0.0, 0.3, 1.0]])
    shifted = normal.copy()
    shifted[0, 4] = 2.5
    assert regime.detect(normal, th)[0] == 1
    assert regime.detect(shifted, th)[0] == 3


def test_calm_needs_the_configured_trend_strength():
    th = regime.Thresholds(calm=1.0, volatile=2.0, crisis=5.0, vol_shift=9.0, calm_trend=0.2)
    quiet = np.array([[1.0, 1.0, 0.0, 0.1, 1.0], [1.0, 1.0, 0.0, 0.5, 1.0]])
    assert regime.detect(quiet, th).tolist() == [1, 0]


def test_every_regime_maps_to_a_tier_by_default():
    assert [regime.DEFAULT_TIER_MAP[r] for r in regime.REGIMES] == ["M3", "M2", "M1", "M0"]


def test_balanced_accuracy_ignores_regimes_that_never_occur():
    cm = np.array([[5, 5, 0, 0], [0, 10, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert regime.balanced_accuracy(cm) == pytest.approx(0.75)
