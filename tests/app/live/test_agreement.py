"""End to end on a real candle file: ETHUSDT 5-minute bars from ../shared/data replayed through the tests'
Bybit exchange give, bar by bar, the prediction /predict gives for the same window.

The service follows the exchange as it would follow Bybit: the file's first bars are its history (the
start-up backfill), the next ones are pushed one by one. For every event, the 48 bars ending at its bar
are posted to /predict as columns, without taker-buy volume, since Bybit's klines have none. Where
hysteresis did not hold the regime, /predict routes the same way and answers the same number, bit for
bit; where it held, /predict says the detector's regime (the event's `detected`), and the tier the
event used, forced, answers the event's number.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from market.candles import Candles
from market.csvfile import read_candles
from market.features import WINDOW
from tests.app.live.conftest import listen, recent, run, serving, settings, symbol_state
from tests.market.feeds.exchange import Exchange

FILE = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ohlcv"
        / "binance_ETHUSDT_5m_20241201_20241231_takerbuy.csv")
STEP_MS = 5 * 60_000
HISTORY, PUBLISHED = 150, 120  # bars closed before the service starts; bars then pushed one by one


@pytest.fixture(scope="module")
def eth() -> Candles:
    if not FILE.is_file():
        pytest.skip(f"{FILE.name} is not here (shared/data is absent)")
    candles = read_candles(FILE).candles[: HISTORY + PUBLISHED]
    # Bybit's klines carry no taker-buy volume; the window the service builds has none either.
    return replace(recent(candles, HISTORY - 1, STEP_MS, STEP_MS), taker_buy_volume=None)


def columns(window: Candles) -> dict[str, list[Any]]:
    return {"ts": window.ts.tolist(), "open": window.open.tolist(), "high": window.high.tolist(),
            "low": window.low.tolist(), "close": window.close.tolist(), "volume": window.volume.tolist()}


@pytest.mark.slow
def test_a_real_file_through_the_exchange_predicts_bar_by_bar_as_predict_does(quick_store, eth):
    async def scenario():
        async with Exchange({"ETHUSDT": eth}, HISTORY, interval="5") as exchange:
            s = settings(quick_store, exchange, ("bybit:linear:ETHUSDT:5",), live_window_bars=HISTORY)
            async with serving(s) as client:
                await symbol_state(client, "ETHUSDT", lambda x: x["state"]["status"] == "live")
                stream = await listen(client, "ETHUSDT")
                await exchange.publish("ETHUSDT", PUBLISHED)
                await stream.until(lambda st: len(st.bars) >= PUBLISHED, seconds=30)
                await stream.close()
                pairs = []
                for ts, event in stream.bars:
                    end = int((eth.ts == ts).nonzero()[0][0]) + 1
                    body = {"candles": columns(eth[end - WINDOW:end])}
                    routed = (await client.post("/predict", json=body)).json()
                    forced = (await client.post("/predict", json={**body, "tier": event["tier"]})).json()
                    pairs.append((event, routed, forced))
                return stream.ids, pairs

    ids, pairs = run(scenario(), seconds=60)
    assert ids == eth.ts[HISTORY:HISTORY + PUBLISHED].tolist(), "one event per pushed bar, in order"
    held = 0
    for event, routed, forced in pairs:
        regime = event["regime"]
        assert routed["regime"]["signals"] == regime["signals"], "the same window gives the same signals"
        assert routed["regime"]["estimated"] == regime["estimated"]
        assert routed["family_id"] == event["family_id"] and routed["last_bar_ts"] == event["bar"]["ts"]
        assert forced["prediction"] == event["prediction"], "the tier the event used answers the same"
        if regime["held"]:
            held += 1
            assert routed["regime"]["name"] == regime["detected"] != regime["name"]
        else:
            assert routed["regime"]["name"] == regime["name"] == regime["detected"]
            assert (routed["tier"], routed["reason"]) == (event["tier"], event["reason"])
            assert routed["prediction"] == event["prediction"], f"bar {event['bar']['ts']}"
    # On these bars the quick family's thresholds leave 5 of 120 held: both paths are checked.
    assert 0 < held < len(pairs), f"{held} of {len(pairs)} bars held"
