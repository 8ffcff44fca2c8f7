"""The rolling window: time order guarded, the last N kept, views that later appends never change."""

import numpy as np
import pytest

from market.candles import Candles
from market.rolling import DUPLICATE, OUT_OF_ORDER, RollingWindow


def bar(ts: int, close: float = 100.0, taker: float | None = None) -> Candles:
    return Candles.from_arrays([ts], [close], [close + 1], [close - 1], [close], [5.0],
                               None if taker is None else [taker])


def test_keeps_the_last_capacity_bars_oldest_first():
    window = RollingWindow(3)
    for i in range(7):
        assert window.append(bar(1000 * i, 100.0 + i)) is None
    view = window.candles()
    assert view.ts.tolist() == [4000, 5000, 6000]
    assert view.close.tolist() == [104.0, 105.0, 106.0]
    assert (window.first_ts, window.last_ts, len(window)) == (4000, 6000, 3)


def test_refuses_a_duplicate_and_an_earlier_bar_saying_which():
    window = RollingWindow(5)
    window.append(bar(2000))
    assert window.append(bar(2000, close=50.0)) == DUPLICATE
    assert window.append(bar(1000)) == OUT_OF_ORDER
    assert window.candles().close.tolist() == [100.0]


def test_a_view_handed_out_is_never_changed_by_later_appends():
    window = RollingWindow(4)
    views = []
    for i in range(40):  # several moves to a new buffer
        window.append(bar(i, float(i + 1)))
        views.append((i, window.candles()))
    for i, view in views:
        first = max(0, i - 3)
        assert view.ts.tolist() == list(range(first, i + 1)), i
        assert view.close.tolist() == [float(t + 1) for t in range(first, i + 1)], i


def test_views_are_read_only():
    window = RollingWindow(2)
    window.append(bar(1))
    with pytest.raises(ValueError, match="read-only"):
        window.candles().close[0] = 1.0


def test_taker_volume_is_carried_only_when_every_bar_in_view_has_it():
    window = RollingWindow(2)
    window.append(bar(1, taker=1.0))
    window.append(bar(2))
    assert window.candles().taker_buy_volume is None
    window.append(bar(3, taker=2.0))
    window.append(bar(4, taker=3.0))
    assert window.candles().taker_buy_volume.tolist() == [2.0, 3.0]


def test_merge_fills_a_hole_keeps_held_bars_and_reports_what_is_new():
    window = RollingWindow(5)
    for ts in (1, 2, 5):
        window.append(bar(ts, close=10.0 * ts, taker=float(ts)))
    fetched = Candles.from_arrays([2, 3, 4], [7.0] * 3, [8.0] * 3, [6.0] * 3, [7.0] * 3, [1.0] * 3, [0.5] * 3)
    added = window.merge(fetched)
    view = window.candles()
    assert added.tolist() == [3, 4]
    assert view.ts.tolist() == [1, 2, 3, 4, 5]
    assert view.close.tolist() == [10.0, 20.0, 7.0, 7.0, 50.0]  # the held bar 2 won over the fetched one
    assert view.taker_buy_volume.tolist() == [1.0, 2.0, 0.5, 0.5, 5.0]


def test_merge_keeps_only_the_newest_capacity_bars():
    window = RollingWindow(3)
    window.append(bar(10))
    added = window.merge(Candles.from_arrays(np.arange(1, 6), *([np.full(5, 5.0)] * 5)))
    assert window.candles().ts.tolist() == [4, 5, 10]
    assert added.tolist() == [4, 5]


def test_append_takes_one_bar_and_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        RollingWindow(0)
    two = Candles.from_arrays([1, 2], [1.0] * 2, [1.0] * 2, [1.0] * 2, [1.0] * 2, [1.0] * 2)
    with pytest.raises(ValueError, match="one bar"):
        RollingWindow(3).append(two)
