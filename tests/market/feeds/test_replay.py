"""The replay feed: a real file's bars in order at the chosen pace, history first, a file's own hole
shown as degraded while it is in the window, the end of the file as the stopped state, no bar lost to
a slow consumer, and the `replay:PATH[:speed]` spec read as documented."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from market.csvfile import read_candles
from market.feeds import BarClosed, FeedOptions, Outbox, ReplayFeed, Speed, open_feed
from tests.market.feeds.conftest import Reader, run

ETH = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ohlcv" / \
    "binance_ETHUSDT_5m_20241201_20241231_takerbuy.csv"


DEC_1 = 1_733_011_200_000  # 2024-12-01T00:00:00Z


def write_minutes(path: Path, minutes: list[int]) -> Path:
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [f"{DEC_1 + m * 60_000},{100 + m},{101 + m},{99 + m},{100.5 + m},{1 + m}" for m in minutes]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_real_file_replays_in_order_at_the_chosen_bars_per_second():
    if not ETH.is_file():
        pytest.skip(f"real candles not present at {ETH}")
    file = read_candles(ETH).candles
    bars, speed = 120, 300.0

    async def scenario():
        async with ReplayFeed(ETH, Speed(bars_per_second=speed), capacity=64) as feed:
            reader = Reader(feed)
            started = time.perf_counter()
            got = await reader.bars_until(bars)
            return got, time.perf_counter() - started, feed.status()

    got, seconds, status = run(scenario())
    assert [int(b.bar.ts[0]) for b in got] == file.ts[64:64 + bars].tolist()
    assert np.array_equal([b.bar.close[0] for b in got], file.close[64:64 + bars])
    assert np.array_equal(got[-1].window.taker_buy_volume, file.taker_buy_volume[bars:64 + bars])
    assert (bars - 1) / speed * 0.9 <= seconds <= (bars - 1) / speed + 1.5, seconds  # paced, not bursted
    assert status.symbol == "ETHUSDT" and status.interval == "5m" and status.interval_ms == 300_000


def test_times_real_time_waits_each_step_and_a_hole_degrades_until_it_leaves_the_window(tmp_path):
    minutes = [*range(10), *range(40, 50)]  # a 30-minute hole after minute 9
    path = write_minutes(tmp_path / "BTCUSDT_1m.csv", minutes)

    async def scenario():
        feed = open_feed(f"replay:{path}:30000x", FeedOptions(capacity=4))  # a minute in 2 ms
        async with feed:
            reader = Reader(feed)
            started = time.perf_counter()
            await feed.wait()
            seconds = time.perf_counter() - started
            await reader.drain()
            return reader, seconds, feed.status()

    reader, seconds, status = run(scenario())
    assert [int(b.bar.ts[0] - DEC_1) // 60_000 for b in reader.bars] == minutes[4:]
    assert seconds >= (49 - 4) * 0.002 * 0.9  # 45 file minutes, the hole included
    statuses = [s.status for s in reader.states]
    assert statuses == ["live", "degraded", "live", "stopped"]
    assert "misses 30 bar(s)" in reader.states[1].reason
    assert status.state.reason == "end of file: 16 bars replayed after 4 of history"


def test_at_max_speed_a_slow_consumer_loses_no_bar(tmp_path):
    path = write_minutes(tmp_path / "ETHUSDT_1m.csv", list(range(40)))

    async def scenario():
        feed = ReplayFeed(path, Speed.parse("max"), capacity=8, outbox=Outbox(size=3))
        async with feed:
            got = []
            while len(got) < 32:
                event = await feed.outbox.get()
                await asyncio.sleep(0.002)
                if isinstance(event, BarClosed):
                    got.append(int(event.bar.ts[0]))
            return got, feed.outbox.dropped

    got, dropped = run(scenario())
    assert dropped == 0
    assert got == [DEC_1 + m * 60_000 for m in range(8, 40)]


@pytest.mark.parametrize(("text", "per_second", "realtime", "shown"), [
    ("10", 10.0, None, "10"), ("2.5", 2.5, None, "2.5"), ("60x", None, 60.0, "60x"),
    ("max", None, None, "max"),
])
def test_speeds_read_as_bars_per_second_times_real_time_or_max(text, per_second, realtime, shown):
    speed = Speed.parse(text)
    assert (speed.bars_per_second, speed.realtime, str(speed)) == (per_second, realtime, shown)


@pytest.mark.parametrize("text", ["0", "-1", "fast", "x", "1.5.2"])
def test_a_speed_that_is_none_of_those_is_refused_with_the_forms(text):
    with pytest.raises(ValueError, match="bars per second"):
        Speed.parse(text)


def test_specs_default_to_one_bar_a_second_and_name_a_missing_file(tmp_path):
    path = write_minutes(tmp_path / "BTCUSDT_1m.csv", list(range(5)))
    assert open_feed(f"replay:{path}").spec == f"replay:{path}:1"
    assert open_feed(f"replay:{path}:60x").spec == f"replay:{path}:60x"
    with pytest.raises(ValueError, match="bars per second"):
        open_feed(f"replay:{path}:fast")
    with pytest.raises(ValueError, match=r"nowhere\.csv' does not exist"):
        open_feed(f"replay:{tmp_path}/nowhere.csv:10")
