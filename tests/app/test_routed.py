"""The routed model `tiered` over REST, in-process: a raw window tensor in, the regime's tier's answer out,
the same answer /predict gives for the same window (bit for bit), its errors naming the tensor element."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from app.routed import BOOK, REGIME, TIER
from market.features import WINDOW
from market.regime import REGIMES

# A book whose signals are exact in float32 (mid 128, spread 2^-10 of it, sizes 3 : 1), so /predict,
# which computes them from the levels in float64, and BOOK, which carries them as FP32, agree exactly.
LEVELS = {"bids": [[127.9375, 3.0]], "asks": [[128.0625, 1.0]]}
SIGNALS = [9.765625, 0.5]  # spread_bps, imbalance
COLUMNS = ("open", "high", "low", "close", "volume", "taker_buy_volume")


def window(market: Any, end: int, taker: bool = False, n: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """The bars ending at `end` as WINDOW's float32 [n, 5 or 6] and TS's int64 [n]."""
    c = market.candles
    rows = slice(end - n + 1, end + 1)
    bars = np.stack([getattr(c, name)[rows] for name in COLUMNS[:6 if taker else 5]], axis=1)
    return bars.astype(np.float32), c.ts[rows].astype(np.int64)


def predict_body(bars: np.ndarray, ts: np.ndarray, book: bool) -> dict[str, Any]:
    """The same window for /predict: the float32 values, exactly, as columns."""
    columns = {"ts": ts.tolist(), **{name: bars[:, j].astype(np.float64).tolist()
                                     for j, name in enumerate(COLUMNS[:bars.shape[1]])}}
    return {"candles": columns, **({"book": LEVELS} if book else {})}


def tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    datatype = "INT64" if values.dtype == np.int64 else "FP32"
    return {"name": name, "shape": list(values.shape), "datatype": datatype, "data": values.ravel().tolist()}


def routed_body(windows: np.ndarray, ts: np.ndarray | None = None, book: np.ndarray | None = None,
                **extra: Any) -> dict[str, Any]:
    inputs = [tensor("WINDOW", windows)]
    if ts is not None:
        inputs.append(tensor("TS", ts))
    if book is not None:
        inputs.append(tensor(BOOK, book))
    return {"inputs": inputs, **extra}


def outputs(r: Any) -> dict[str, np.ndarray]:
    assert r.status_code == 200, r.text
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


@pytest.fixture(scope="module")
def labels(client) -> dict[str, list[str]]:
    properties = client.get("/v2/models/tiered").json()["properties"]
    return {name: properties[f"labels.{name}"].split(",") for name in (TIER, REGIME)}


def test_metadata_gives_the_window_tensor_and_the_index_maps(client, manifest_data, labels):
    meta = client.get("/v2/models/tiered").json()
    assert meta["versions"] == [manifest_data["family_id"]]
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("WINDOW", "FP32", [-1, -1, -1]), ("BOOK", "FP32", [-1, 2]), ("TS", "INT64", [-1, -1])]
    assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [
        (manifest_data["output"]["name"], "FP32"), (TIER, "INT64"), (REGIME, "INT64")]
    assert labels[REGIME] == list(REGIMES)
    assert labels[TIER] == [t["name"] for t in sorted(manifest_data["tiers"], key=lambda t: -t["params"])]
    assert "optional" in meta["properties"]["TS"] and "server's clock" in meta["properties"]["TS"]


@pytest.mark.parametrize("book", [False, True])
@pytest.mark.parametrize("taker", [False, True])
def test_tiered_gives_predicts_answer_for_the_same_window_in_every_regime(
        client, market, regime_ends, output_name, labels, book, taker):
    for regime, end in regime_ends.items():
        bars, ts = window(market, end, taker)
        expected = client.post("/predict", json=predict_body(bars, ts, book)).json()
        got = outputs(client.post("/v2/models/tiered/infer", json=routed_body(
            bars[None], ts[None], np.array([SIGNALS], dtype=np.float32) if book else None)))
        assert float(got[output_name][0, 0]) == expected["prediction"], regime
        assert labels[TIER][int(got[TIER][0, 0])] == expected["tier"]
        assert labels[REGIME][int(got[REGIME][0, 0])] == expected["regime"]["name"]


def test_a_batch_of_windows_gives_predict_batchs_answers(client, market, regime_ends, output_name, labels):
    ends = list(regime_ends.values())
    pairs = [window(market, end) for end in ends]
    bars, ts = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    books = np.array([SIGNALS if i % 2 else [np.nan, np.nan] for i in range(len(ends))], dtype=np.float32)
    expected = client.post("/predict/batch", json={"items": [
        predict_body(bars[i], ts[i], bool(i % 2)) for i in range(len(ends))]}).json()["results"]
    # NaN is no JSON number; the service reads the NaN token all the same (binary clients send it as is).
    got = outputs(client.post("/v2/models/tiered/infer", content=json.dumps(routed_body(bars, ts, books))))
    assert got[output_name].ravel().tolist() == [e["prediction"] for e in expected]
    assert [labels[TIER][i] for i in got[TIER].ravel()] == [e["tier"] for e in expected]
    assert [labels[REGIME][i] for i in got[REGIME].ravel()] == [e["regime"]["name"] for e in expected]


def test_without_ts_the_last_bar_opens_at_the_servers_clock(client, market, regime_ends, output_name):
    bars, _ = window(market, regime_ends["normal"])
    before = time.time_ns() // 1_000_000
    r = client.post("/v2/models/tiered/infer", json=routed_body(bars[None]))
    after = time.time_ns() // 1_000_000
    parameters = r.json()["parameters"]
    assert parameters["ts"] == "server_clock" and before <= parameters["last_bar_ts"] <= after
    ts = parameters["last_bar_ts"] - 60_000 * np.arange(WINDOW - 1, -1, -1)
    expected = client.post("/predict", json=predict_body(bars, ts, book=False)).json()
    assert float(outputs(r)[output_name][0, 0]) == expected["prediction"]
    with_ts = client.post("/v2/models/tiered/infer", json=routed_body(bars[None], ts[None]))
    assert with_ts.json()["parameters"] == {"ts": "TS"}


def test_parameters_override_the_tier_as_on_predict(client, market, regime_ends, labels):
    bars, ts = window(market, regime_ends["calm"])
    got = outputs(client.post("/v2/models/tiered/infer", json=routed_body(
        bars[None], ts[None], parameters={"tier": "M0"})))
    assert labels[TIER][int(got[TIER][0, 0])] == "M0"


def test_outputs_are_selected_by_name(client, market, regime_ends):
    bars, ts = window(market, regime_ends["calm"])
    r = client.post("/v2/models/tiered/infer", json=routed_body(
        bars[None], ts[None], outputs=[{"name": REGIME}, {"name": TIER}]))
    assert [o["name"] for o in r.json()["outputs"]] == [REGIME, TIER]


def _broken(change: str) -> dict[str, Any]:
    """A body of two windows (synthetic, valid) with one thing broken."""
    bars = np.tile(np.array([100.0, 101.0, 99.0, 100.5, 10.0], dtype=np.float32), (2, WINDOW, 1))
    ts = np.tile(1_700_000_000_000 + 60_000 * np.arange(WINDOW, dtype=np.int64), (2, 1))
    book = np.array([SIGNALS, SIGNALS], dtype=np.float32)
    body = routed_body(bars, ts, book)
    tensors = {t["name"]: t for t in body["inputs"]}
    match change:
        case "high_below_open":
            tensors["WINDOW"]["data"][(WINDOW + 5) * 5 + 1] = 99.5  # window 1, bar 5, high
        case "ts_not_increasing":
            tensors["TS"]["data"][3] = tensors["TS"]["data"][2]
        case "negative_volume":
            tensors["WINDOW"]["data"][7 * 5 + 4] = -1.0
        case "spread_zero":
            tensors[BOOK]["data"][2] = 0.0
        case "imbalance_beyond_one":
            tensors[BOOK]["data"][1] = 1.5
        case "four_columns":
            tensors["WINDOW"].update(shape=[2, WINDOW, 4], data=tensors["WINDOW"]["data"][:2 * WINDOW * 4])
        case "too_few_bars":
            tensors["WINDOW"].update(shape=[2, 20, 5], data=tensors["WINDOW"]["data"][:2 * 20 * 5])
        case "ts_shape":
            tensors["TS"].update(shape=[1, 2 * WINDOW])
        case "ts_as_fp32":
            tensors["TS"]["datatype"] = "FP32"
        case "ts_fraction":
            tensors["TS"]["data"][0] = 0.5
        case "book_shape":
            tensors[BOOK].update(shape=[1, 4])
        case "unknown_input":
            body["inputs"].append({"name": "SPREAD", "shape": [2], "datatype": "FP32", "data": [1.0, 1.0]})
        case "no_window":
            body["inputs"] = [tensors["TS"]]
        case "unknown_tier":
            body["parameters"] = {"tier": "M7"}
        case "budget_zero":
            body["parameters"] = {"max_latency_ms": 0}
    return body


BROKEN = [
    ("high_below_open", "WINDOW[1][5][1] (high) is below max(open, close)"),
    ("ts_not_increasing", "TS[0][3] is not after the previous timestamp"),
    ("negative_volume", "WINDOW[0][7][4] (volume)"),
    ("spread_zero", "BOOK[1][0] (spread_bps)"),
    ("imbalance_beyond_one", "BOOK[0][1] (imbalance)"),
    ("four_columns", "5 or 6"),
    ("too_few_bars", f"{WINDOW} ≤ bars"),
    ("ts_shape", f"send [2, {WINDOW}]"),
    ("ts_as_fp32", "send INT64"),
    ("ts_fraction", "TS[0][0] is not a whole number"),
    ("book_shape", "send [2, 2]"),
    ("unknown_input", "unknown input 'SPREAD'"),
    ("no_window", "input WINDOW is missing"),
    ("unknown_tier", "parameters.tier"),
    ("budget_zero", "parameters.max_latency_ms"),
]


def test_the_unbroken_body_is_served(client):
    assert client.post("/v2/models/tiered/infer", json=_broken("nothing")).status_code == 200


@pytest.mark.parametrize(("change", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_bad_window_is_a_400_naming_the_tensor_element(client, change, words):
    r = client.post("/v2/models/tiered/infer", json=_broken(change))
    assert r.status_code == 400 and set(r.json()) == {"error"}, r.text
    assert words in r.json()["error"], r.json()


def test_the_openapi_examples_are_served_and_the_routed_one_is_predicts_answer(client, output_name):
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/v2/models/{model}/infer"]["post"]["requestBody"]["content"][
        "application/json"]["examples"]
    assert client.post("/v2/models/M3/infer", json=examples["tier"]["value"]).status_code == 200
    body = examples["tiered"]["value"]
    got = outputs(client.post("/v2/models/tiered/infer", json=body))
    window, ts = (np.array(t["data"]).reshape(t["shape"])[0] for t in body["inputs"])
    expected = client.post("/predict", json=predict_body(window.astype(np.float32), ts, book=False)).json()
    assert float(got[output_name][0, 0]) == expected["prediction"]
