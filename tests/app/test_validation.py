"""Every input rule: a bad request gets a 4xx in the one error shape, naming the field and the fix.

Each case changes one thing in a valid body (candles and book cut from the training market).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

Body = dict[str, Any]


def candle(i: int, **values: Any) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body["candles"][i].update(values)
    return change


def swap_ts(i: int, j: int) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        c = body["candles"]
        c[i]["ts"], c[j]["ts"] = c[j]["ts"], c[i]["ts"]
    return change


def duplicate_ts(i: int) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body["candles"][i]["ts"] = body["candles"][i - 1]["ts"]
    return change


def high_below_body(i: int) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        c = body["candles"][i]
        c["high"] = min(c["open"], c["close"]) * 0.999
        c["low"] = min(c["low"], c["high"])
    return change


def low_above_body(i: int) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        c = body["candles"][i]
        c["low"] = max(c["open"], c["close"]) * 1.001
        c["high"] = max(c["high"], c["low"])
    return change


def book(side: str, level: list[Any]) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body["book"][side] = [level]
    return change


def crossed(body: Body) -> None:
    bid = body["book"]["bids"][0][0]
    body["book"]["asks"] = [[bid * 0.999, 1.0]]


def some_taker_volume(body: Body) -> None:
    for c in body["candles"][:10]:
        c["taker_buy_volume"] = c["volume"] / 2
    for c in body["candles"][10:]:
        c.pop("taker_buy_volume", None)


def field(name: str, value: Any) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body[name] = value
    return change


def drop(name: str) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        del body[name]
    return change


def keep(n: int) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body["candles"] = body["candles"][len(body["candles"]) - n:]
    return change


def wide_range(body: Body) -> None:
    # Every value is in float32's range, but the window's features are not.
    body["candles"][-1].update(open=1e-30, close=1e-30, low=1e-30, high=1e30)


F32_OVERFLOW = 1e39

RULES = [
    ("nan_price", candle(5, open=float("nan")), "candles[5].open", "finite"),
    ("infinite_price", candle(5, close=float("inf")), "candles[5].close", "finite"),
    ("negative_infinite_volume", candle(5, volume=float("-inf")), "candles[5].volume", "finite"),
    ("zero_price", candle(5, low=0.0), "candles[5].low", "greater than 0"),
    ("negative_price", candle(7, open=-1.0), "candles[7].open", "greater than 0"),
    ("price_as_string", candle(5, open="101.5"), "candles[5].open", "number"),
    ("price_beyond_float32", candle(5, high=F32_OVERFLOW), "candles[5].high", "less than or equal"),
    ("volume_beyond_float32", candle(5, volume=F32_OVERFLOW), "candles[5].volume", "less than or equal"),
    ("high_below_open_or_close", high_below_body(9), "candles[9].high", "high must be ≥ max(open, close)"),
    ("low_above_open_or_close", low_above_body(9), "candles[9].low", "low must be ≤ min(open, close)"),
    ("negative_volume", candle(5, volume=-1.0), "candles[5].volume", "greater than or equal to 0"),
    ("negative_taker_volume", candle(5, taker_buy_volume=-1.0), "candles[5].taker_buy_volume", "greater"),
    ("taker_volume_on_some_candles", some_taker_volume, "candles[10].taker_buy_volume", "every candle"),
    ("duplicate_timestamp", duplicate_ts(6), "candles[6].ts", "increase strictly"),
    ("unsorted_timestamps", swap_ts(20, 21), "candles[21].ts", "increase strictly"),
    ("negative_timestamp", candle(0, ts=-5), "candles[0].ts", "greater than or equal to 0"),
    ("fractional_timestamp", candle(3, ts=1.5), "candles[3].ts", "integer"),
    ("too_few_candles", keep(47), "candles", "at least 48"),
    ("no_candles", keep(0), "candles", "at least 48"),
    ("missing_candles", drop("candles"), "candles", "required"),
    ("unknown_field", field("colour", "red"), "colour", "not permitted"),
    ("book_price_not_positive", book("bids", [0.0, 1.0]), "book.bids[0][0]", "greater than 0"),
    ("book_negative_size", book("asks", [101.0, -2.0]), "book.asks[0][1]", "greater than or equal to 0"),
    ("book_nan_price", book("asks", [float("nan"), 2.0]), "book.asks[0][0]", "finite"),
    ("book_empty_side", field("book", {"bids": [], "asks": [[101.0, 1.0]]}), "book.bids", "at least 1"),
    ("book_crossed", crossed, "book.bids", "is not below best ask"),
    ("book_level_without_size", book("bids", [100.0]), "book.bids[0][1]", "required"),
    ("latency_budget_not_positive", field("max_latency_ms", 0), "max_latency_ms", "greater than 0"),
    ("latency_budget_nan", field("max_latency_ms", float("nan")), "max_latency_ms", "finite"),
    ("features_overflow", wide_range, "candles", "overflow float32"),
    ("empty_tier_name", field("tier", ""), "tier", "at least 1"),
]


@pytest.mark.parametrize(("change", "field_name", "words"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_predict_rejects_a_bad_request_naming_the_field(client, make_body, change, field_name, words):
    body = make_body()
    change(body)
    for path in ("/predict", "/regime"):
        r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["field"] == field_name, error
        assert error["message"].startswith(field_name), error
        if words:
            assert words in error["message"], error


def test_predict_rejects_an_unknown_tier_with_404_naming_the_tiers(client, make_body):
    r = client.post("/predict", json=make_body(tier="M9"))
    assert r.status_code == 404
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_tier", "tier")
    assert "M9" in error["message"] and "M0" in error["message"]


def test_predict_rejects_more_candles_than_configured(quick_store, client_for, make_body):
    with client_for(quick_store, max_candles=100) as c:
        assert c.post("/predict", json=make_body(end=500, n=100)).status_code == 200
        r = c.post("/predict", json=make_body(end=500, n=101))
    assert r.status_code == 422 and r.json()["error"]["field"] == "candles"
    assert "at most 100" in r.json()["error"]["message"]


@pytest.mark.parametrize("raw", [b'{"candles": ', b"[1, 2", b"\xff\xfe", b"null", b"[]", b'"text"'])
def test_predict_rejects_a_body_that_is_not_a_json_object(client, raw):
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert r.json()["error"]["field"] in ("body", None)


def test_predict_rejects_a_body_sent_as_a_form(client, make_body):
    r = client.post("/predict", content=json.dumps(make_body()),
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_input"
