"""The three forms of a window (candle objects, columns, Bybit's kline list) give the same answer bit for
bit; Bybit's list is taken as Bybit sends it: newest first, numbers as strings, the forming candle first."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from app import examples

Body = dict[str, Any]
VOLATILE = ("latency_us",)
MINUTE_MS = 60_000
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CAPTURE = SHARED / "bybit" / "ccxt_bybit_fetchOHLCV_linear_BTCUSDT_1h.httpResponse.json"


@pytest.fixture(scope="module")
def bybit_capture() -> Body:
    if not CAPTURE.is_file():
        pytest.skip(f"{CAPTURE.name} is not here (shared/data is absent)")
    data: Body = json.loads(CAPTURE.read_text())
    return data


def columns(body: Body) -> Body:
    rows = body["candles"]
    return {**body, "candles": {name: [c[name] for c in rows] for name in rows[0]}}


def bybit(body: Body, forming: bool = False, now_ms: int | None = None) -> Body:
    rows = [[str(c["ts"]), *(repr(c[k]) for k in ("open", "high", "low", "close", "volume")), "123.4"]
            for c in reversed(body["candles"])]
    if forming:  # the candle after the last one, just started, as Bybit lists it: first
        last = body["candles"][-1]
        rows.insert(0, [str(last["ts"] + MINUTE_MS), repr(last["close"]), repr(last["close"] * 1.01),
                        repr(last["close"] * 0.99), repr(last["close"] * 1.005), "0.5", "1.0"])
    out = {k: v for k, v in body.items() if k != "candles"}
    out["bybit_kline"] = rows
    if now_ms is not None:
        out["bybit_time"] = now_ms
    return out


def without_taker_volume(body: Body) -> Body:
    rows = [{k: v for k, v in c.items() if k != "taker_buy_volume"} for c in body["candles"]]
    return {**body, "candles": rows}


def answer(client: Any, path: str, body: Body) -> Body:
    r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    return {k: v for k, v in r.json().items() if k not in VOLATILE}


@pytest.mark.parametrize("end", [300, 2000, 4000])
@pytest.mark.parametrize("path", ["/predict", "/regime"])
def test_objects_columns_and_bybit_give_the_same_answer_bit_for_bit(client, make_body, end, path):
    with_taker = make_body(end=end)
    assert answer(client, path, with_taker) == answer(client, path, columns(with_taker))
    plain = without_taker_volume(with_taker)  # Bybit's klines carry no taker-buy volume
    expected = answer(client, path, plain)
    assert answer(client, path, columns(plain)) == expected
    assert answer(client, path, bybit(plain)) == expected


def test_a_batch_mixing_the_forms_answers_each_as_alone(client, make_body):
    plain = without_taker_volume(make_body(end=2500))
    items = [plain, columns(plain), bybit(plain), make_body(end=900)]
    r = client.post("/predict/batch", json={"items": items})
    assert r.status_code == 200, r.text
    got = [{k: v for k, v in a.items() if k not in VOLATILE} for a in r.json()["results"]]
    assert got == [answer(client, "/predict", item) for item in items]
    assert got[0] == got[1] == got[2]


def test_bybit_with_the_forming_candle_first_and_string_numbers_leaves_it_out(client, make_body):
    plain = without_taker_volume(make_body(end=3000))
    last = plain["candles"][-1]["ts"]
    closed = answer(client, "/predict", bybit(plain, now_ms=last + 2 * MINUTE_MS))
    forming = answer(client, "/predict", bybit(plain, forming=True, now_ms=last + MINUTE_MS + 20_000))
    assert forming["dropped_open_candle"] is True and closed["dropped_open_candle"] is False
    assert {**forming, "dropped_open_candle": False} == closed
    assert closed["last_bar_ts"] == last


def test_bybit_without_its_time_judges_the_newest_row_by_the_servers_clock(client, make_body):
    plain = without_taker_volume(make_body(end=3000))
    # Move the window so that its forming candle started 10 s ago: by the clock, it has not closed.
    shift = (int(time.time() * 1000) - 10_000) - (plain["candles"][-1]["ts"] + MINUTE_MS)
    moved = {**plain, "candles": [{**c, "ts": c["ts"] + shift} for c in plain["candles"]]}
    live = answer(client, "/predict", bybit(moved, forming=True))
    assert live["dropped_open_candle"] is True and live["last_bar_ts"] == moved["candles"][-1]["ts"]
    old = answer(client, "/predict", bybit(plain, forming=True))  # 2024: every row closed long ago
    assert old["dropped_open_candle"] is False
    assert old["last_bar_ts"] == plain["candles"][-1]["ts"] + MINUTE_MS


def test_bybit_interval_overrides_the_spacing_of_the_list(client, make_body):
    plain = without_taker_volume(make_body(end=3000, n=60))
    last = plain["candles"][-1]["ts"]
    # By the list's spacing (1 minute) the newest row closed at last + 1 min; as an hourly candle it had not.
    as_minutes = answer(client, "/predict", bybit(plain, now_ms=last + 2 * MINUTE_MS))
    hourly = {**bybit(plain, now_ms=last + 2 * MINUTE_MS), "bybit_interval": "60"}
    as_hours = answer(client, "/predict", hourly)
    assert as_minutes["dropped_open_candle"] is False and as_hours["dropped_open_candle"] is True


def test_a_real_bybit_body_is_forwarded_as_it_comes(client, bybit_capture):
    """shared/data's real GET /v5/market/kline capture (3 hourly candles): too short for a window, and
    the answer says so in the list's own terms."""
    r = client.post("/predict", json={"bybit_kline": bybit_capture["result"]["list"],
                                      "bybit_time": int(bybit_capture["time"])})
    assert r.status_code == 422 and r.json()["error"]["field"] == "bybit_kline"
    assert "got 3 candles" in r.json()["error"]["message"]


def test_the_openapi_examples_of_the_three_forms_answer_alike(client):
    answers = [answer(client, "/predict", examples.PREDICT[form]["value"])
               for form in ("objects", "columns", "bybit")]
    assert answers[2]["dropped_open_candle"] is True
    assert answers[0] == answers[1] == {**answers[2], "dropped_open_candle": False}
