"""Every input rule, in every form a window takes: a bad request gets a 4xx in the one error shape, its
`field` naming the element as the client sent it and its message saying the fix.

Each case changes one thing in a valid window (candles and book cut from the training market) and is
sent as candle objects, as columns and as Bybit's kline list; the same rule must name the same element
in each form's own spelling: `candles[5].high`, `candles.high[5]`, `bybit_kline[42][2]`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from app.windows import COLUMNS

Body = dict[str, Any]
Candles = list[dict[str, Any]]
FORMS = ("objects", "columns", "bybit")


def as_form(body: Body, form: str) -> Body:
    """The object-form body in another form (Bybit's: newest first, numbers as strings, no taker volume)."""
    out = {k: v for k, v in body.items() if k != "candles"}
    rows: Candles = body["candles"]
    if form == "columns":
        names = [n for n in COLUMNS if any(n in c for c in rows)]
        out["candles"] = {n: [c.get(n) for c in rows] for n in names}
    elif form == "bybit":
        out["bybit_kline"] = [[_text(c["ts"]), *(_text(c[k]) for k in COLUMNS[1:6]), "0"] for c in rows[::-1]]
    else:
        out["candles"] = rows
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


def element(form: str, n: int, row: int, column: str) -> str:
    if form == "objects":
        return f"candles[{row}].{column}"
    if form == "columns":
        return f"candles.{column}[{row}]"
    return f"bybit_kline[{n - 1 - row}][{COLUMNS.index(column)}]"


def whole(form: str) -> str:
    return "bybit_kline" if form == "bybit" else "candles"


def set_value(row: int, **values: Any) -> Callable[[Candles], None]:
    def change(c: Candles) -> None:
        c[row].update(values)
    return change


def swap_ts(c: Candles) -> None:
    c[20]["ts"], c[21]["ts"] = c[21]["ts"], c[20]["ts"]


def duplicate_ts(c: Candles) -> None:
    c[6]["ts"] = c[5]["ts"]


def high_below_body(c: Candles) -> None:
    c[9]["high"] = min(c[9]["open"], c[9]["close"]) * 0.999
    c[9]["low"] = min(c[9]["low"], c[9]["high"])


def low_above_body(c: Candles) -> None:
    c[9]["low"] = max(c[9]["open"], c[9]["close"]) * 1.001
    c[9]["high"] = max(c[9]["high"], c[9]["low"])


def wide_range(c: Candles) -> None:  # every value within float32's range, the window's features not
    c[-1].update(open=1e-30, close=1e-30, low=1e-30, high=1e30)


def keep(n: int) -> Callable[[Candles], None]:
    def change(c: Candles) -> None:
        del c[:len(c) - n]
    return change


F32_OVERFLOW = 1e39
# (id, change to the candles, the element it breaks: (row, column) or None for the whole window, words)
CANDLE_RULES: list[tuple[str, Callable[[Candles], None], tuple[int, str] | None, str]] = [
    ("nan_price", set_value(5, open=math.nan), (5, "open"), "finite"),
    ("infinite_price", set_value(5, close=math.inf), (5, "close"), "finite"),
    ("negative_infinite_volume", set_value(5, volume=-math.inf), (5, "volume"), "finite"),
    ("zero_price", set_value(5, low=0.0), (5, "low"), "greater than 0"),
    ("negative_price", set_value(7, open=-1.0), (7, "open"), "greater than 0"),
    ("price_beyond_float32", set_value(5, high=F32_OVERFLOW), (5, "high"), "less than or equal"),
    ("volume_beyond_float32", set_value(5, volume=F32_OVERFLOW), (5, "volume"), "less than or equal"),
    ("high_below_open_or_close", high_below_body, (9, "high"), "high must be ≥ max(open, close)"),
    ("low_above_open_or_close", low_above_body, (9, "low"), "low must be ≤ min(open, close)"),
    ("negative_volume", set_value(5, volume=-1.0), (5, "volume"), "greater than or equal to 0"),
    ("duplicate_timestamp", duplicate_ts, (6, "ts"), "is not after"),
    ("unsorted_timestamps", swap_ts, (21, "ts"), "is not after"),
    ("negative_timestamp", set_value(0, ts=-5), (0, "ts"), "whole number of milliseconds"),
    ("fractional_timestamp", set_value(3, ts=1.5), (3, "ts"), "whole number of milliseconds"),
    ("timestamp_beyond_2_53", set_value(3, ts=2**53 + 1), (3, "ts"), "whole number of milliseconds"),
    ("too_few_candles", keep(47), None, "at least 48"),
    ("features_overflow", wide_range, None, "overflow float32"),
]
TAKER_RULES = [  # Bybit's klines carry no taker-buy volume
    ("negative_taker_volume", set_value(5, taker_buy_volume=-1.0), (5, "taker_buy_volume"),
     "greater than or equal"),
    ("taker_volume_above_volume", lambda c: c[5].update(taker_buy_volume=c[5]["volume"] * 1.5),
     (5, "taker_buy_volume"), "must be ≤ volume"),
]


def post(client: Any, path: str, body: Body) -> Any:
    # json.dumps writes NaN and infinities as the tokens NaN, Infinity, -Infinity, as a careless client would.
    return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def assert_refused(r: Any, field: str, words: str, status: int = 422) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == ("invalid_input" if status == 422 else error["code"])
    assert error["field"] == field, error
    assert error["message"].startswith(field), error
    assert words in error["message"], error


CASES = [(form, *rule) for rule in CANDLE_RULES for form in FORMS] + \
    [(form, *rule) for rule in TAKER_RULES for form in ("objects", "columns")]  # Bybit's klines have none


@pytest.mark.parametrize(("form", "change", "where", "words"), [c[:1] + c[2:] for c in CASES],
                         ids=[f"{c[1]}-{c[0]}" for c in CASES])
def test_a_broken_window_is_refused_naming_the_element_in_every_form(client, make_body, form, change, where,
                                                                      words):
    body = make_body(book=form != "bybit")
    change(body["candles"])
    n = len(body["candles"])
    field = whole(form) if where is None else element(form, n, *where)
    for path in ("/predict", "/regime"):
        assert_refused(post(client, path, as_form(body, form)), field, words)


@pytest.mark.parametrize("form", FORMS)
def test_a_bad_item_of_a_batch_is_named_with_its_index_in_every_form(client, make_body, form):
    bad = make_body(book=False)
    bad["candles"][40]["close"] = -3.0
    items = [as_form(make_body(book=False), f) for f in FORMS] + [as_form(bad, form)]
    r = post(client, "/predict/batch", {"items": items})
    assert_refused(r, f"items[3].{element(form, 48, 40, 'close')}", "greater than 0")


OTHER_RULES = [
    ("price_as_string", "objects", lambda b: b["candles"][5].update(open="101.5"), "candles[5].open",
     "expected a number, got a string"),
    ("price_as_string", "columns", lambda b: b["candles"]["open"].__setitem__(5, "101.5"), "candles.open[5]",
     "expected a number, got a string"),
    ("price_not_a_number", "bybit", lambda b: b["bybit_kline"][3].__setitem__(2, "12,5"), "bybit_kline[3][2]",
     "(high) is not a number"),
    ("price_null", "columns", lambda b: b["candles"]["close"].__setitem__(0, None), "candles.close[0]",
     "expected a number, got null"),
    ("taker_volume_on_some_candles", "objects",
     lambda b: [c.pop("taker_buy_volume") for c in b["candles"][10:]],
     "candles[10].taker_buy_volume", "every candle"),
    ("column_too_short", "columns", lambda b: b["candles"]["high"].pop(), "candles.high",
     "give every column the same length"),
    ("taker_column_too_long", "columns", lambda b: b["candles"]["taker_buy_volume"].append(1.0),
     "candles.taker_buy_volume", "49 values"),
    ("unknown_column", "columns", lambda b: b["candles"].update(vwap=[1.0] * 48), "candles.vwap",
     "unknown field"),
    ("kline_row_too_short", "bybit", lambda b: b["bybit_kline"][7].pop(), "bybit_kline[7]", "length >= 7"),
    ("bybit_time_without_bybit_kline", "objects", lambda b: b.update(bybit_time=1), "bybit_time",
     "bybit_kline only"),
    ("bybit_interval_unknown", "bybit", lambda b: b.update(bybit_interval="7"), "bybit_interval", "7"),
    ("both_forms", "bybit", lambda b: b.update(candles=[]), "candles", "not both"),
    ("missing_candles", "objects", lambda b: b.pop("candles"), "candles", "required"),
    ("unknown_field", "objects", lambda b: b.update(colour="red"), "colour", "unknown field"),
    ("unknown_candle_field", "objects", lambda b: b["candles"][2].update(colour="red"), "candles[2].colour",
     "unknown field"),
    ("missing_candle_field", "objects", lambda b: b["candles"][2].pop("low"), "candles[2].low", "required"),
    ("book_price_not_positive", "columns", lambda b: b["book"].update(bids=[[0.0, 1.0]]), "book.bids[0][0]",
     "greater than 0"),
    ("book_negative_size", "objects", lambda b: b["book"].update(asks=[[101.0, -2.0]]), "book.asks[0][1]",
     "greater than or equal to 0"),
    ("book_nan_price", "bybit", lambda b: b["book"].update(asks=[[math.nan, 2.0]]), "book.asks[0][0]",
     "finite"),
    ("book_empty_side", "objects", lambda b: b["book"].update(bids=[]), "book.bids", "at least 1"),
    ("book_crossed", "columns", lambda b: b["book"].update(asks=[[b["book"]["bids"][0][0] * 0.999, 1.0]]),
     "book.bids", "is not below best ask"),
    ("book_level_without_size", "objects", lambda b: b["book"].update(bids=[[100.0]]), "book.bids[0]",
     "length 2"),
    ("latency_budget_not_positive", "objects", lambda b: b.update(max_latency_ms=0), "max_latency_ms",
     "greater than 0"),
    ("latency_budget_nan", "columns", lambda b: b.update(max_latency_ms=math.nan), "max_latency_ms",
     "finite"),
    ("empty_tier_name", "bybit", lambda b: b.update(tier=""), "tier", "length >= 1"),
]


@pytest.mark.parametrize(("form", "change", "field_name", "words"), [r[1:] for r in OTHER_RULES],
                         ids=[f"{r[0]}-{r[1]}" for r in OTHER_RULES])
def test_a_bad_request_is_refused_naming_the_field(client, make_body, form, change, field_name, words):
    body = as_form(make_body(), form)
    change(body)
    for path in ("/predict", "/regime"):
        assert_refused(post(client, path, body), field_name, words)


def test_predict_rejects_an_unknown_tier_with_404_naming_the_tiers(client, make_body):
    r = client.post("/predict", json=make_body(tier="M9"))
    assert r.status_code == 404
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_tier", "tier")
    assert "M9" in error["message"] and "M0" in error["message"]


@pytest.mark.parametrize("form", FORMS)
def test_more_candles_than_configured_are_refused_naming_the_setting(quick_store, client_for, make_body,
                                                                      form):
    with client_for(quick_store, max_candles=100) as c:
        assert post(c, "/predict", as_form(make_body(end=500, n=100), form)).status_code == 200
        r = post(c, "/predict", as_form(make_body(end=500, n=101), form))
    field = {"objects": "candles", "columns": "candles.ts", "bybit": "bybit_kline"}[form]
    assert_refused(r, field, "at most 100 (TIERED_MAX_CANDLES)")


def test_a_batch_over_the_configured_items_is_refused_naming_the_setting(quick_store, client_for, make_body):
    with client_for(quick_store, max_batch_items=2) as c:
        r = post(c, "/predict/batch", {"items": [as_form(make_body(), "columns")] * 3})
    assert_refused(r, "items", "at most 2 (TIERED_MAX_BATCH_ITEMS)")


@pytest.mark.parametrize("raw", [b'{"candles": ', b"[1, 2", b"\xff\xfe", b"null", b"[]", b'"text"'])
def test_predict_rejects_a_body_that_is_not_a_json_object(client, raw):
    r = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert r.json()["error"]["field"] == "body"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_predict_rejects_a_body_not_sent_as_json(client, make_body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/predict", content=json.dumps(make_body()), headers=headers)
    assert_refused(r, "body", "Content-Type: application/json")


def test_a_key_sent_twice_keeps_the_last_value(client, make_body):
    # Documented in app/wire.py and the README: the decoder reports no duplicate keys; the last one wins.
    body = json.dumps(make_body(tier="M0"))
    twice = body[:-1] + ', "tier": "M2"}'
    r = client.post("/predict", content=twice, headers={"content-type": "application/json"})
    assert r.json()["tier"] == "M2"

