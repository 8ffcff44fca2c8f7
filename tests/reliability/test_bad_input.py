"""Bad input, property-based: hypothesis draws market windows the schemas accept (any price scale from
1e-6 to float32's edge, flat or wild series, zero volume, with or without book and taker volume) and
then breaks one rule of the schemas or of the window. A valid request is answered 200 with finite
numbers only; an invalid one gets the 4xx of its rule, naming the field, and never a 500, a
non-finite number, a path or a stack trace.

tests/app/test_validation.py pins each rule once with a hand-made body; this draws the values, the
position of the bad candle, the batch item it hides in, and the raw JSON tokens (NaN, Infinity,
-Infinity, 1e400) that a strict JSON encoder would never send.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

F32_MAX = 3.4028234663852886e38
MAX_CANDLES, MAX_ITEMS = 120, 8  # small limits, so that going over them stays cheap
EXAMPLES = 100
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
OVERFLOW = 1.2345678901234567e-300  # a marker replaced by the token 1e400 in the raw body
PRICES = ("open", "high", "low", "close")

Body = dict[str, Any]


@pytest.fixture(scope="module")
def client(quick_store: Path, client_for: Any) -> Iterator[Any]:
    with client_for(quick_store, max_candles=MAX_CANDLES, max_batch_items=MAX_ITEMS) as c:
        yield c


@st.composite
def windows(draw: st.DrawFn) -> Body:
    """A /predict body every rule accepts: a random walk at a drawn price scale and volatility."""
    n = draw(st.integers(48, MAX_CANDLES))
    scale = 10 ** draw(st.floats(-6, 30))
    sigma = draw(st.sampled_from([0.0, 1e-4, 0.003, 0.05]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    close = scale * np.exp(np.cumsum(rng.normal(0, sigma, n)))
    open_ = np.r_[scale, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, sigma, n)))
    low = np.minimum(open_, close) * (1 - np.minimum(np.abs(rng.normal(0, sigma, n)), 0.5))
    volume = rng.lognormal(0, 1, n) * draw(st.sampled_from([0.0, 1.0, 1e6]))
    ts = draw(st.integers(0, 2**40)) + np.cumsum(rng.integers(1, 86_400_000, n))
    candles = [{"ts": int(ts[i]), "open": float(open_[i]), "high": float(high[i]), "low": float(low[i]),
                "close": float(close[i]), "volume": float(volume[i])} for i in range(n)]
    if draw(st.booleans()):
        for c in candles:
            c["taker_buy_volume"] = c["volume"] * 0.5
    body: Body = {"candles": candles}
    if draw(st.booleans()):
        mid = candles[-1]["close"]
        body["book"] = {"bids": [[mid * 0.999, 1.0], [mid * 0.998, 2.0]], "asks": [[mid * 1.001, 3.0]]}
    return body


def post(client: Any, path: str, body: Body) -> Any:
    """POST the body as raw JSON: NaN and infinities go out as the tokens NaN, Infinity, -Infinity."""
    raw = json.dumps(body).replace(repr(OVERFLOW), "1e400")
    return client.post(path, content=raw, headers={"content-type": "application/json"})


# Each breakage changes one thing and returns (the field the answer must name, the status).
Breakage = Callable[[Body, st.DataObject], tuple[str, int]]


def bad_number(body: Body, data: st.DataObject) -> tuple[str, int]:
    i = data.draw(st.integers(0, len(body["candles"]) - 1))
    key = data.draw(st.sampled_from([*PRICES, "volume"]))
    bad = [math.nan, math.inf, -math.inf, 1e39, -1e39, OVERFLOW, -1.0, "1.5", None, True, [], {}]
    body["candles"][i][key] = data.draw(st.sampled_from([*bad, 0.0] if key in PRICES else bad))
    return f"candles[{i}].{key}", 422


def bad_timestamp(body: Body, data: st.DataObject) -> tuple[str, int]:
    i = data.draw(st.integers(0, len(body["candles"]) - 1))
    body["candles"][i]["ts"] = data.draw(st.sampled_from([-1, 1.5, 2**53 + 1, "1700000000000", None]))
    return f"candles[{i}].ts", 422


def out_of_order(body: Body, data: st.DataObject) -> tuple[str, int]:
    c = body["candles"]
    i = data.draw(st.integers(0, len(c) - 2))
    if data.draw(st.booleans()):
        c[i]["ts"], c[i + 1]["ts"] = c[i + 1]["ts"], c[i]["ts"]
    else:
        c[i + 1]["ts"] = c[i]["ts"]
    return f"candles[{i + 1}].ts", 422


def high_or_low_inside_the_body(body: Body, data: st.DataObject) -> tuple[str, int]:
    i = data.draw(st.integers(0, len(body["candles"]) - 1))
    c = body["candles"][i]
    if data.draw(st.booleans()):
        c["high"] = min(c["open"], c["close"]) * 0.99
        c["low"] = min(c["low"], c["high"])
        return f"candles[{i}].high", 422
    c["low"] = max(c["open"], c["close"]) * 1.01
    c["high"] = max(c["high"], c["low"])
    return f"candles[{i}].low", 422


def wrong_length(body: Body, data: st.DataObject) -> tuple[str, int]:
    c = body["candles"]
    n = data.draw(st.sampled_from([0, 1, 47, MAX_CANDLES + 1]))
    # Timestamps still increase, so only the length is wrong.
    body["candles"] = [dict(c[k % len(c)], ts=1_000 * k) for k in range(n)]
    return "candles", 422


def unknown_or_missing_key(body: Body, data: st.DataObject) -> tuple[str, int]:
    i = data.draw(st.integers(0, len(body["candles"]) - 1))
    if data.draw(st.booleans()):
        key = data.draw(st.sampled_from(["ts", *PRICES, "volume"]))
        del body["candles"][i][key]
        return f"candles[{i}].{key}", 422
    if data.draw(st.booleans()):
        body["candles"][i]["colour"] = "red"
        return f"candles[{i}].colour", 422
    body["model_path"] = "/etc/passwd"
    return "model_path", 422


def bad_book(body: Body, data: st.DataObject) -> tuple[str, int]:
    mid = body["candles"][-1]["close"]
    choice = data.draw(st.integers(0, 5))
    if choice == 0:
        body["book"] = {"bids": [[mid * 1.01, 1.0]], "asks": [[mid * 0.99, 1.0]]}  # crossed
        return "book.bids", 422
    if choice == 1:
        body["book"] = {"bids": [[mid, 1.0]], "asks": [[mid, 1.0]]}  # locked: bid not below ask
        return "book.bids", 422
    if choice == 2:
        body["book"] = {"bids": [], "asks": [[mid, 1.0]]}
        return "book.bids", 422
    if choice == 3:
        body["book"] = {"bids": [[mid, 1.0]], "asks": [[mid * 1.01, -1.0]]}
        return "book.asks[0][1]", 422
    if choice == 4:
        body["book"] = {"bids": [[mid * 0.99, 1.0]] * 1001, "asks": [[mid * 1.01, 1.0]]}
        return "book.bids", 422
    body["book"] = {"bids": [[mid * 0.99, math.nan]], "asks": [[mid * 1.01, 1.0]]}
    return "book.bids[0][1]", 422


def bad_routing(body: Body, data: st.DataObject) -> tuple[str, int]:
    if data.draw(st.booleans()):
        body["tier"] = data.draw(st.sampled_from(["M9", "m0", "../M0", "M0.onnx", "https://x/y"]))
        return "tier", 404
    body["max_latency_ms"] = data.draw(st.sampled_from([0, -1.0, math.nan, math.inf, 60_001, "5"]))
    return "max_latency_ms", 422


def some_taker_volume(body: Body, data: st.DataObject) -> tuple[str, int]:
    c = body["candles"]
    j = data.draw(st.integers(1, len(c) - 1))
    for k, candle in enumerate(c):
        candle.pop("taker_buy_volume", None)
        if k < j:
            candle["taker_buy_volume"] = candle["volume"] / 2
    return f"candles[{j}].taker_buy_volume", 422


BREAKAGES: list[Breakage] = [bad_number, bad_timestamp, out_of_order, high_or_low_inside_the_body,
                             wrong_length, unknown_or_missing_key, bad_book, bad_routing, some_taker_volume]


def assert_names_the_field(sound: Callable[[str], Any], r: Any, field: str, status: int) -> None:
    error = sound(r.text)["error"]
    assert r.status_code == status, r.text
    assert error["field"] == field or error["field"].startswith(f"{field}["), (field, error)
    assert error["message"].startswith(error["field"]), error


@SETTINGS
@given(body=windows(), tier=st.sampled_from([None, "M0", "M1", "M2", "M3"]),
       budget=st.sampled_from([None, 0.001, 5.0, 60_000]))
def test_a_valid_window_is_answered_with_finite_numbers(client, sound, body, tier, budget):
    body.update({k: v for k, v in (("tier", tier), ("max_latency_ms", budget)) if v is not None})
    for path in ("/predict", "/regime"):
        r = post(client, path, body)
        assert r.status_code == 200, r.text
        out = sound(r.text)
        assert out["tier"] in {"M0", "M1", "M2", "M3"} and out["reason"] in {"regime", "override", "budget"}


@SETTINGS
@given(body=windows(), breakage=st.sampled_from(BREAKAGES), data=st.data())
def test_a_broken_window_gets_the_4xx_of_its_rule_naming_the_field(client, sound, body, breakage, data):
    field, status = breakage(body, data)
    for path in ("/predict", "/regime"):
        assert_names_the_field(sound, post(client, path, body), field, status)


@SETTINGS
@given(good=st.lists(windows(), min_size=1, max_size=MAX_ITEMS - 1), bad=windows(),
       breakage=st.sampled_from(BREAKAGES), data=st.data())
def test_a_broken_item_fails_the_batch_naming_its_index(client, sound, good, bad, breakage, data):
    field, status = breakage(bad, data)
    at = data.draw(st.integers(0, len(good)))
    items = [*good[:at], bad, *good[at:]]
    r = post(client, "/predict/batch", {"items": items})
    assert_names_the_field(sound, r, f"items[{at}].{field}", status)
    fine = post(client, "/predict/batch", {"items": good})
    assert fine.status_code == 200 and len(sound(fine.text)["results"]) == len(good)


@settings(SETTINGS, max_examples=EXAMPLES // 4)
@given(items=st.sampled_from([[], "none", None, {"candles": []}])
       | st.lists(windows(), min_size=MAX_ITEMS + 1, max_size=MAX_ITEMS + 2))
def test_a_batch_without_items_or_with_too_many_is_refused_naming_items(client, sound, items):
    assert_names_the_field(sound, post(client, "/predict/batch", {"items": items}), "items", 422)


@SETTINGS
@given(rows=st.integers(0, 4), width=st.integers(0, 60),
       value=st.sampled_from([0.0, 1e30, -1e30, F32_MAX, math.nan, math.inf, 1e39, "x", None]),
       datatype=st.sampled_from(["FP32", "FP64", "INT8", "BYTES"]), tier=st.sampled_from(["M0", "M3", "M9"]))
def test_the_inference_protocol_never_answers_5xx_or_a_non_finite_number(
        client, sound, rows, width, value, datatype, tier):
    body = {"inputs": [{"name": "features", "shape": [rows, width], "datatype": datatype,
                        "data": [value] * (rows * width)}]}
    r = post(client, f"/v2/models/{tier}/infer", body)
    out = sound(r.text)
    if r.status_code == 200:
        assert len(out["outputs"][0]["data"]) == rows
    else:
        assert r.status_code in (400, 404) and isinstance(out["error"], str), r.text
