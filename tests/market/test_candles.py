"""Candles and books refuse broken invariants, naming the field and the row."""

import numpy as np
import pytest

from market.candles import Book, Candles
from market.errors import BookError, CandleError


def candles(**overrides):
    base = dict(ts=[1, 2, 3], open=[10, 11, 12], high=[11, 12, 13], low=[9, 10, 11],
                close=[11, 12, 12.5], volume=[1, 2, 3])
    base.update(overrides)
    return Candles.from_arrays(**base)


def test_valid_candles_pass_and_slice():
    c = candles().validate()
    assert len(c[1:]) == 2 and c[1:].close[0] == 12


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"high": [11, 10.5, 13]}, "high", "row 1"),
        ({"low": [9, 11.5, 11]}, "low", "row 1"),
        ({"open": [10, -1, 12]}, "open", "greater than 0"),
        ({"volume": [1, -2, 3]}, "volume", "negative"),
        ({"ts": [1, 3, 3]}, "ts", "row 2"),
        ({"close": [11, np.nan, 12]}, "close", "finite"),
        ({"close": [11, 12]}, "close", "2 values"),
        ({"taker_buy_volume": [1, 2.5, 3]}, "taker_buy_volume", "must be ≤ volume"),
    ],
)
def test_candles_reject_a_broken_invariant_naming_field_and_row(overrides, field, words):
    with pytest.raises(CandleError) as e:
        candles(**overrides).validate()
    assert e.value.field == field
    assert words in str(e.value)


def test_violations_list_every_broken_row_of_every_invariant():
    broken = {v.field: v.rows.tolist() for v in candles(high=[9, 10.5, 13], ts=[1, 1, 0]).violations()}
    assert broken == {"high": [0, 1], "ts": [1, 2]}


def test_book_sorts_levels_best_first_and_reads_spread_and_imbalance():
    book = Book.from_levels([[99, 1], [100, 3]], [[102, 1], [101, 1]]).validate()
    assert book.bids[0, 0] == 100 and book.asks[0, 0] == 101
    assert book.imbalance == pytest.approx(0.5)
    assert book.spread_bps == pytest.approx(1 / 100.5 * 1e4)


@pytest.mark.parametrize(
    ("bids", "asks", "field"),
    [
        ([[101, 1]], [[100, 1]], "bids"),
        ([[100, -1]], [[101, 1]], "bids"),
        ([[100, 1]], [[0, 1]], "asks"),
        ([], [[101, 1]], "bids"),
    ],
)
def test_book_rejects_crossed_or_impossible_levels(bids, asks, field):
    with pytest.raises(BookError) as e:
        Book.from_levels(bids, asks).validate()
    assert e.value.field == field
