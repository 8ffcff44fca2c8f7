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
