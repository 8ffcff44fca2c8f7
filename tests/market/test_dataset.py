"""The dataset builder: rows from windows, next-bar targets, time-ordered splits with a window gap."""

import numpy as np
import pytest

from market import dataset, features
from market.sources import parse, synthetic_source
from market.synthetic import simulate


@pytest.fixture(scope="module")
def data():
    return dataset.build(synthetic_source(20_000, 2))


def test_splits_follow_time_with_a_gap_of_one_window(data):
    assert data.train.ends[-1] < data.val.ends[0] < data.test.ends[0]
    assert data.val.ends[0] - data.train.ends[-1] > features.WINDOW
    assert data.test.ends[0] - data.val.ends[-1] > features.WINDOW
    assert len(data.train) > len(data.val) > 0 and len(data.test) > 0


def test_each_row_is_what_a_single_window_with_its_book_yields_and_the_next_bar_return():
    src, m = synthetic_source(20_000, 2), simulate(20_000, 2)
    data = dataset.build(src)
    end = int(data.val.ends[123])
    served = features.compute(features.window_of(m.candles[: end + 1], m.book_at(end)))
    assert np.array_equal(served.x[0], data.val.x[123])
    expected = np.float32(np.log(src.candles.close[end + 1] / src.candles.close[end]))
    assert data.val.y[123] == expected


def test_class_labels_put_about_a_third_of_training_rows_in_the_flat_band(data):
    labels = data.labels(data.train)
    shares = np.bincount(labels, minlength=3) / len(labels)
    assert shares[1] == pytest.approx(1 / 3, abs=0.01)
    assert set(np.unique(labels)) == {0, 1, 2}


def test_synthetic_rows_carry_the_truth_for_scoring(data):
    assert data.test.true_regime is not None and data.test.expected_return is not None
    assert data.test.true_regime.shape == data.test.y.shape


def test_too_short_a_series_is_refused_with_the_size_needed():
    with pytest.raises(ValueError, match="need at least"):
        dataset.build(synthetic_source(200, 1))


def test_an_unknown_source_is_refused_with_the_accepted_forms():
    with pytest.raises(ValueError, match="synthetic, csv:PATH or bybit:SYMBOL:INTERVAL"):
        parse("parquet:x", bars=10, seed=0)
