"""Bybit WebSocket frames decoded into domain values, the recorded shapes first, then everything that
can be wrong with them; and the order book kept from snapshots and deltas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from market.feeds.book import LocalBook
from market.feeds.events import (
    DELTA_BEFORE_SNAPSHOT,
    INVALID_BOOK,
    INVALID_CANDLE,
    MALFORMED,
    NON_NUMERIC,
    UNEXPECTED,
)
from market.feeds.frames import Ack, BookUpdate, Dropped, Klines, Pong, decode

RECORDED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "bybit" / "ws"

# Exactly the recorded frames in shared/data/bybit/ws (checked below when the folder is present).
PONG = {"success": True, "ret_msg": "pong", "conn_id": "465772b1-7630-4fdc-a492-e003e6f0f260", "req_id": "",
        "op": "ping"}
ACK = {"success": True, "ret_msg": "", "conn_id": "3cd84cb1-4d06-4a05-930a-2efe5fc70f0f", "req_id": "",
       "op": "subscribe"}
REJECT = {"success": False, "ret_msg": "error:handler not found,topic:kline.5.NOTASYMBOL",
          "conn_id": "958a35b7-c1fb-48e3-953f-997702f22f6e", "req_id": "", "op": "subscribe"}
KLINE_OPEN = {"topic": "kline.5.BTCUSDT", "data": [{
    "start": 1672324800000, "end": 1672325099999, "interval": "5", "open": "16649.5", "close": "16677",
    "high": "16677", "low": "16608", "volume": "2.081", "turnover": "34666.4005", "confirm": False,
    "timestamp": 1672324988882}], "ts": 1672324988882, "type": "snapshot"}
BOOK_DELTA = {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1687940967466, "data": {
    "s": "BTCUSDT", "b": [["30247.20", "30.028"], ["30245.40", "0.224"], ["30242.10", "1.593"],
                          ["30240.30", "1.305"], ["30240.00", "0"]],
    "a": [["30248.70", "0"], ["30249.30", "0.892"], ["30249.50", "1.778"], ["30249.60", "0"],
          ["30251.90", "2.947"], ["30252.20", "0.659"], ["30252.50", "4.591"]],
    "u": 177400507, "seq": 66544703342}, "cts": 1687940967464}


def closed(**fields: object) -> str:
    candle = {**KLINE_OPEN["data"][0], "confirm": True, **fields}
    return json.dumps({**KLINE_OPEN, "data": [candle]})


@pytest.mark.parametrize(("file", "frame"), [
    ("pong_linear.json", PONG), ("subscribe_ack_linear.json", ACK), ("subscribe_reject.json", REJECT),
    ("kline_5_BTCUSDT_open.json", KLINE_OPEN), ("orderbook_50_BTCUSDT_delta.json", BOOK_DELTA),
])
def test_inline_frames_are_the_recorded_ones(file, frame):
    path = RECORDED / file
    if not path.is_file():
        pytest.skip(f"recorded frames not present at {path}")
    assert json.loads(path.read_text()) == frame


def test_pong_ack_and_rejection_are_told_apart_and_a_rejection_names_its_topic():
    assert decode(json.dumps(PONG)) == Pong()
    assert decode(json.dumps({"op": "pong", "args": ["1672304486868"]})) == Pong()  # spot's spelling
    assert decode(json.dumps(ACK)) == Ack(True, None, "")
    assert decode(json.dumps({**ACK, "req_id": "kline.1.BTCUSDT"})) == Ack(True, "kline.1.BTCUSDT", "")
    assert decode(json.dumps(REJECT)) == Ack(False, "kline.5.NOTASYMBOL", REJECT["ret_msg"])


def test_an_open_candle_is_no_bar_and_a_confirmed_one_is_a_validated_row():
    assert decode(json.dumps(KLINE_OPEN)) == Klines("kline.5.BTCUSDT", [], [])
    frame = decode(closed())
    assert isinstance(frame, Klines) and len(frame.closed) == 1
    bar = frame.closed[0]
    assert (int(bar.ts[0]), bar.open[0], bar.high[0], bar.low[0], bar.close[0], bar.volume[0]) == (
        1672324800000, 16649.5, 16677.0, 16608.0, 16677.0, 2.081)
    assert bar.taker_buy_volume is None


def test_one_bad_candle_in_a_push_is_dropped_without_its_neighbours():
    good = {**KLINE_OPEN["data"][0], "confirm": True}
    bad = {**good, "start": good["start"] + 300_000, "low": "99999"}
    frame = decode(json.dumps({**KLINE_OPEN, "data": [good, bad]}))
    assert isinstance(frame, Klines) and len(frame.closed) == 1
    assert [d.reason for d in frame.dropped] == [INVALID_CANDLE]
    assert "low: row 0 is above min(open, close)" in frame.dropped[0].detail


@pytest.mark.parametrize(("message", "reason"), [
    ("not json", MALFORMED),
    ("[1, 2]", MALFORMED),
    (json.dumps({**KLINE_OPEN, "data": {"start": 1}}), MALFORMED),
    (json.dumps({"op": "auth", "success": True}), UNEXPECTED),
    (json.dumps({"topic": "tickers.BTCUSDT", "data": {}}), UNEXPECTED),
    (json.dumps({"topic": 5}), MALFORMED),
    (json.dumps({"op": "subscribe", "success": "yes"}), MALFORMED),
    (json.dumps({**BOOK_DELTA, "type": "partial"}), MALFORMED),
    (json.dumps({**BOOK_DELTA, "data": {**BOOK_DELTA["data"], "b": [["1", "2", "3"]]}}), MALFORMED),
    (json.dumps({**BOOK_DELTA, "data": {**BOOK_DELTA["data"], "a": [["1", "many"]]}}), NON_NUMERIC),
    (json.dumps({**BOOK_DELTA, "data": {**BOOK_DELTA["data"], "u": "x1"}}), MALFORMED),
])
def test_frames_that_are_not_what_bybit_documents_are_dropped_with_a_reason(message, reason):
    frame = decode(message)
    assert isinstance(frame, Dropped) and frame.reason == reason, frame


@pytest.mark.parametrize(("fields", "reason"), [
    ({"open": "abc"}, NON_NUMERIC), ({"close": ""}, NON_NUMERIC), ({"high": "inf"}, NON_NUMERIC),
    ({"volume": None}, NON_NUMERIC), ({"low": True}, NON_NUMERIC), ({"confirm": "true"}, MALFORMED),
    ({"start": "soon"}, MALFORMED), ({"high": "16000"}, INVALID_CANDLE), ({"volume": "-1"}, INVALID_CANDLE),
    ({"open": "0"}, INVALID_CANDLE),
])
def test_a_candle_with_a_bad_field_is_dropped_naming_the_field(fields, reason):
    frame = decode(closed(**fields))
    assert isinstance(frame, Klines) and not frame.closed
    assert [d.reason for d in frame.dropped] == [reason]
    assert any(name in frame.dropped[0].detail for name in fields), frame.dropped[0].detail


def test_a_candle_missing_a_price_is_malformed():
    candle = {k: v for k, v in KLINE_OPEN["data"][0].items() if k != "close"}
    frame = decode(json.dumps({**KLINE_OPEN, "data": [{**candle, "confirm": True}]}))
    assert isinstance(frame, Klines) and [d.reason for d in frame.dropped] == [MALFORMED]


def book(kind: str, bids: list[list[str]], asks: list[list[str]], u: int) -> BookUpdate:
    frame = decode(json.dumps({"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": 1,
                               "data": {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": u}}))
    assert isinstance(frame, BookUpdate)
    return frame


def test_the_recorded_delta_applies_to_a_snapshot_by_bybits_rules():
    local = LocalBook()
    snapshot = book("snapshot", [["30247.20", "5"], ["30240.00", "1"]],
                    [["30248.70", "2"], ["30249.60", "3"]], 177400506)
    first = local.apply(snapshot)
    assert not isinstance(first, tuple) and first.bids[0].tolist() == [30247.2, 5.0]
    top = local.apply(decode(json.dumps(BOOK_DELTA)))  # type: ignore[arg-type]
    assert not isinstance(top, tuple)
    # 30247.20 updated to 30.028; ask 30248.70 deleted (size 0), so 30249.30 is the best ask.
    assert top.bids[0].tolist() == [30247.2, 30.028] and top.asks[0].tolist() == [30249.3, 0.892]


def test_a_delta_before_any_snapshot_and_a_crossed_book_are_refused_until_a_new_snapshot():
    local = LocalBook()
    assert local.apply(book("delta", [["10", "1"]], [["11", "1"]], 5))[0] == DELTA_BEFORE_SNAPSHOT
    crossed = local.apply(book("snapshot", [["12", "1"]], [["11", "1"]], 6))
    assert isinstance(crossed, tuple) and crossed[0] == INVALID_BOOK and "not below best ask" in crossed[1]
    assert local.apply(book("delta", [["10", "1"]], [], 7))[0] == DELTA_BEFORE_SNAPSHOT
    assert not isinstance(local.apply(book("snapshot", [["10", "1"]], [["11", "1"]], 8)), tuple)


def test_a_delta_with_update_id_one_is_a_fresh_book_and_an_emptied_side_is_refused():
    local = LocalBook()
    local.apply(book("snapshot", [["10", "1"], ["9", "1"]], [["11", "1"]], 40))
    restarted = local.apply(book("delta", [["20", "2"]], [["21", "2"]], 1))
    assert not isinstance(restarted, tuple) and restarted.bids.tolist() == [[20.0, 2.0]]
    emptied = local.apply(book("delta", [["20", "0"]], [], 2))
    assert isinstance(emptied, tuple) and emptied[0] == INVALID_BOOK and "bids: is empty" in emptied[1]
