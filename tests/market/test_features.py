"""The one feature pipeline: deterministic, batch = single windows, book or estimates, no torch."""

import subprocess
import sys

import numpy as np
import pytest

from market import features
from market.candles import Book
from market.synthetic import simulate


@pytest.fixture(scope="module")
def market():
    return simulate(3_000, 11)


def book_arrays(m):
    mid = (m.ask + m.bid) / 2
    return (m.ask - m.bid) / mid * 1e4, (m.bid_size - m.ask_size) / (m.bid_size + m.ask_size)


def test_the_same_window_always_yields_the_same_vector(market):
    w = features.window_of(market.candles[:500], market.book_at(499))
    a, b = features.compute(w), features.compute(w)
    assert a.x.dtype == np.float32 and a.x.shape == (1, len(features.FEATURE_NAMES))
    assert np.array_equal(a.x, b.x)


def test_a_single_window_equals_its_row_in_the_batch(market):
    spread, imbalance = book_arrays(market)
    ends = np.arange(features.WINDOW - 1, 2_000)
    batch = features.compute(features.sliding_windows(market.candles, ends, spread, imbalance))
    for end in (features.WINDOW - 1, 777, 1_999):
        one = features.compute(features.window_of(market.candles[: end + 1], market.book_at(end)))
        assert np.array_equal(one.x[0], batch.x[end - ends[0]])


def test_book_values_are_used_when_present_and_estimated_otherwise(market):
    c = market.candles[:300]
    book = Book.top(99.0, 3.0, 101.0, 1.0)
    with_book = features.compute(features.window_of(c, book))
    without = features.compute(features.window_of(c))
    names = list(features.SIGNAL_NAMES)
    assert with_book.estimated(0) == []
    assert with_book.signals[0, names.index("imbalance")] == pytest.approx(0.5)
    assert with_book.signals[0, names.index("spread_bps")] == pytest.approx(200.0)
    assert without.estimated(0) == ["spread_bps", "imbalance"]
    # Taker-buy share of the last bar, mapped to [-1, 1].
    last_share = 2 * c.taker_buy_volume[-1] / c.volume[-1] - 1
    assert without.signals[0, names.index("imbalance")] == pytest.approx(last_share)


def test_a_family_trained_without_books_ignores_a_book_in_the_request(market):
    c = market.candles[:300]
    w = features.window_of(c, Book.top(99.0, 3.0, 101.0, 1.0))
    ignored = features.compute(w, use_book=False)
    assert ignored.estimated(0) == ["spread_bps", "imbalance"]
    assert np.array_equal(ignored.x, features.compute(features.window_of(c)).x)


def test_close_location_stands_in_for_imbalance_without_taker_volume(market):
    c = market.candles[:300]
    bare = type(c)(c.ts, c.open, c.high, c.low, c.close, c.volume, None)
    sig = features.compute(features.window_of(bare)).signals[0]
    h, lo, cl = c.high[-1], c.low[-1], c.close[-1]
    assert sig[2] == pytest.approx(((cl - lo) - (h - cl)) / (h - lo))


def test_features_are_finite_on_flat_and_zero_volume_candles():
    n = features.WINDOW
    flat = simulate(n, 0).candles
    flat = type(flat)(flat.ts, np.full(n, 5.0), np.full(n, 5.0), np.full(n, 5.0), np.full(n, 5.0),
                      np.zeros(n), None)
    out = features.compute(features.window_of(flat))
    assert np.isfinite(out.x).all()


def test_a_window_shorter_than_the_feature_window_is_refused(market):
    with pytest.raises(ValueError, match=str(features.WINDOW)):
        features.window_of(market.candles[:10])


def test_feature_and_detector_code_import_no_torch():
    code = ("import sys, market.features, market.regime, market.dataset, market.sources;"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def column(name):
    return features.FEATURE_NAMES.index(name)


def test_relative_volume_does_not_depend_on_the_volume_level(market):
    c = market.candles[:300]
    scaled = type(c)(c.ts, c.open, c.high, c.low, c.close, c.volume * 1000.0, c.taker_buy_volume * 1000.0)
    a, b = features.compute(features.window_of(c)).x, features.compute(features.window_of(scaled)).x
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_order_flow_lags_are_the_taker_buy_shares_of_the_last_bars(market):
    c = market.candles[:300]
    x = features.compute(features.window_of(c)).x[0]
    for k in range(features.N_LAGS):
        share = 2 * c.taker_buy_volume[-1 - k] / c.volume[-1 - k] - 1
        assert x[column(f"flow_lag{k}")] == pytest.approx(share, rel=1e-5)


def test_har_components_are_log_mean_ranges_over_their_horizons(market):
    c = market.candles[:300]
    x = features.compute(features.window_of(c)).x[0]
    rng = (c.high - c.low) / c.close
    assert x[column("logrange_lag0")] == pytest.approx(np.log(rng[-1]), rel=1e-5)
    for n in features.HAR_BARS:
        assert x[column(f"logrange_mean{n}")] == pytest.approx(np.log(rng[-n:].mean()), rel=1e-5)


@pytest.mark.parametrize(("iso", "hours", "weekday"), [
    ("2024-01-01T00:00:00Z", 0.0, 0),  # a Monday, midnight
    ("2024-06-15T18:30:00Z", 18.5, 5),  # a Saturday evening
    ("1969-12-31T06:00:00Z", 6.0, 2),  # before the epoch: a Wednesday
])
def test_calendar_inputs_encode_time_of_day_and_weekday_of_the_last_bar(market, iso, hours, weekday):
    import datetime as dt

    last = int(dt.datetime.fromisoformat(iso).timestamp() * 1000)
    c = market.candles[:features.WINDOW]
    shifted = type(c)(c.ts - c.ts[-1] + last, c.open, c.high, c.low, c.close, c.volume, c.taker_buy_volume)
    x = features.compute(features.window_of(shifted)).x[0]
    tod, dow = 2 * np.pi * hours / 24, 2 * np.pi * weekday / 7
    expected = [np.sin(tod), np.cos(tod), np.sin(dow), np.cos(dow)]
    got = [x[column(n)] for n in ("tod_sin", "tod_cos", "dow_sin", "dow_cos")]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Only the calendar moves with the clock.
    rest = [i for i, n in enumerate(features.FEATURE_NAMES) if not n.startswith(("tod_", "dow_"))]
    np.testing.assert_array_equal(x[rest], features.compute(features.window_of(c)).x[0][rest])
