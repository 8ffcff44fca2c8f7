"""The dataset builder: rows from windows, the target's y, time-ordered splits with a window + horizon gap."""

import numpy as np
import pytest

from market import dataset, features, targets
from market.sources import parse, synthetic_source
from market.synthetic import simulate


@pytest.fixture(scope="module")
def data():
    return dataset.build(synthetic_source(20_000, 2), targets.get("return"))


@pytest.mark.parametrize(("name", "horizon"), [("return", 1), ("volatility", 12), ("direction", 30)])
def test_no_label_of_one_split_reads_a_bar_the_next_splits_features_see(name, horizon):
    data = dataset.build(synthetic_source(20_000, 2), targets.get(name, horizon))
    for before, after in ((data.train, data.val), (data.val, data.test)):
        last_label_bar = before.ends[-1] + horizon
        first_feature_bar = after.ends[0] - features.WINDOW + 1
        assert last_label_bar < first_feature_bar
    assert len(data.train) > len(data.val) > 0 and len(data.test) > 0
    assert data.test.ends[-1] + horizon == len(data.candles) - 1  # the last row still has its full horizon


def test_each_row_is_what_a_single_window_with_its_book_yields_and_the_next_bar_return():
    src, m = synthetic_source(20_000, 2), simulate(20_000, 2)
    data = dataset.build(src, targets.get("return"))
    end = int(data.val.ends[123])
    served = features.compute(features.window_of(m.candles[: end + 1], m.book_at(end)))
    assert np.array_equal(served.x[0], data.val.x[123])
    expected = np.float32(np.log(src.candles.close[end + 1] / src.candles.close[end]))
    assert data.val.y[123] == expected


def test_the_direction_band_is_fitted_on_the_training_split_only():
    src = synthetic_source(20_000, 2)
    data = dataset.build(src, targets.get("direction"))
    labels = data.train.y
    shares = np.bincount(labels, minlength=3) / len(labels)
    assert shares[1] == pytest.approx(1 / 3, abs=0.01) and set(np.unique(labels)) == {0, 1, 2}
    on_train = targets.get("direction").fit(src.candles, data.train.ends)
    assert data.target.params == on_train.params


def test_synthetic_rows_carry_the_truth_for_scoring(data):
    truth = data.test.truth
    assert data.test.true_regime is not None and truth.expected_return is not None and truth.sigma is not None
    assert data.test.true_regime.shape == truth.sigma.shape == data.test.y.shape
    np.testing.assert_array_equal(data.oracle(data.test)[:, 0], truth.expected_return)


def test_too_short_a_series_is_refused_with_the_size_needed():
    with pytest.raises(ValueError, match="need at least"):
        dataset.build(synthetic_source(200, 1), targets.get("return"))


def test_an_unknown_source_is_refused_with_the_accepted_forms():
    with pytest.raises(ValueError, match="synthetic, csv:PATH or bybit:SYMBOL:INTERVAL"):
        parse("parquet:x", bars=10, seed=0)
