"""POST /predict, /predict/batch and /regime over the quick family."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from pathlib import Path

import pytest

from app.dataplane import DataPlane, Query
from app.errors import InvalidInput
from app.metrics import Metrics
from app.registry import Registry
from app.wire import Codec, Limits
from market.features import SIGNAL_NAMES
from market.regime import REGIMES

CODEC = Codec(Limits(max_candles=2048, max_batch_items=256))


def query(body: dict[str, object]) -> Query:
    return CODEC.query(json.dumps(body).encode(), "application/json")


def test_predict_answers_with_prediction_tier_reason_regime_family_and_latency(
        client, make_body, manifest_data):
    r = client.post("/predict", json=make_body())
    assert r.status_code == 200, r.text
    out = r.json()
    assert math.isfinite(out["prediction"])
    assert out["tier"] in {t["name"] for t in manifest_data["tiers"]}
    assert out["reason"] == "regime" and out["requested_tier"] == out["tier"]
    assert out["regime"]["name"] in REGIMES
    assert out["regime"]["name"] in manifest_data["regime"]["tier_map"]
    assert out["tier"] == manifest_data["regime"]["tier_map"][out["regime"]["name"]]
    assert set(out["regime"]["signals"]) == set(SIGNAL_NAMES)
    assert out["regime"]["estimated"] == []
    assert out["family_id"] == manifest_data["family_id"]
    assert out["latency_us"] > 0


def test_predict_without_a_book_says_which_signals_were_estimated(client, make_body):
    out = client.post("/predict", json=make_body(book=False)).json()
    assert out["regime"]["estimated"] == ["spread_bps", "imbalance"]


def test_a_window_without_taker_volume_says_its_order_flow_was_estimated(client, make_body, manifest_data):
    assert manifest_data["source"]["taker_volume"] is True  # the simulator has taker-buy volume
    body = make_body()
    for c in body["candles"]:
        del c["taker_buy_volume"]
    out = client.post("/predict", json=body).json()
    assert out["regime"]["estimated"] == ["order_flow"]


def test_order_flow_is_not_flagged_for_a_family_trained_without_taker_volume(
        store_copy, client_for, make_body, manifest_editor):
    store, family_dir = store_copy
    manifest_editor(family_dir, lambda m: m["source"].update(taker_volume=False))
    body = make_body(book=False)
    for c in body["candles"]:
        del c["taker_buy_volume"]
    with client_for(store) as client:
        out = client.post("/predict", json=body).json()
    assert out["regime"]["estimated"] == ["spread_bps", "imbalance"]


def test_predict_accepts_more_candles_than_the_window_and_uses_the_last_ones(client, make_body):
    short = client.post("/predict", json=make_body(end=1000, n=48)).json()
    long = client.post("/predict", json=make_body(end=1000, n=300)).json()
    assert long["prediction"] == short["prediction"]
    assert long["regime"] == short["regime"]


def test_predict_accepts_taker_buy_volume_on_every_candle(client, make_body):
    body = make_body(book=False)
    for c in body["candles"]:
        c["taker_buy_volume"] = c["volume"] * 0.75
    out = client.post("/predict", json=body).json()
    assert out["regime"]["signals"]["imbalance"] == pytest.approx(0.5)
    assert out["regime"]["estimated"] == ["spread_bps", "imbalance"]


def test_batch_answers_every_item_in_order_as_predict_does_one_by_one(client, make_body, regime_ends):
    items = [make_body(end=e) for e in regime_ends.values()] + [make_body(end=700, book=False, tier="M0")]
    r = client.post("/predict/batch", json={"items": items})
    assert r.status_code == 200, r.text
    batch = r.json()
    assert len(batch["results"]) == len(items) and batch["latency_us"] > 0
    for item, got in zip(items, batch["results"], strict=True):
        alone = client.post("/predict", json=item).json()
        for key in ("prediction", "tier", "requested_tier", "reason", "regime", "family_id"):
            assert got[key] == alone[key], key
    assert batch["results"][-1]["tier"] == "M0" and batch["results"][-1]["reason"] == "override"


def test_batch_refuses_the_whole_call_naming_the_bad_item(client, make_body):
    bad = make_body()
    bad["candles"][3]["low"] = bad["candles"][3]["high"] * 2
    r = client.post("/predict/batch", json={"items": [make_body(), bad]})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "items[1].candles[3].low"


def test_batch_refuses_more_items_than_configured(quick_store, client_for, make_body):
    with client_for(quick_store, max_batch_items=2) as c:
        r = c.post("/predict/batch", json={"items": [make_body()] * 3})
    assert r.status_code == 422 and r.json()["error"]["field"] == "items"
    assert "at most 2" in r.json()["error"]["message"]


def test_regime_gives_signals_regime_and_tier_without_predicting(client, make_body):
    body = make_body()
    regime = client.post("/regime", json=body).json()
    predicted = client.post("/predict", json=body).json()
    assert "prediction" not in regime
    for key in ("tier", "requested_tier", "reason", "regime", "family_id"):
        assert regime[key] == predicted[key]


def test_regime_routes_an_override_like_predict(client, make_body):
    out = client.post("/regime", json=make_body(tier="M1")).json()
    assert (out["tier"], out["reason"]) == ("M1", "override")


def test_coalesced_predictions_answer_each_caller_and_fail_only_the_bad_one(quick_store: Path, make_body):
    registry = Registry(quick_store)
    registry.load()
    metrics = Metrics()
    plane = DataPlane(registry, metrics)
    good = [query(make_body(end=e)) for e in (500, 900, 1500)]
    broken = make_body(end=1200)
    broken["candles"][10]["high"] = broken["candles"][10]["low"] / 2
    bad = query(broken)

    async def together() -> list[object]:
        calls = [plane.predict(good[0]), plane.predict(bad), plane.predict(good[1]), plane.predict(good[2])]
        return await asyncio.gather(*calls, return_exceptions=True)

    async def alone(q: Query) -> object:
        return await plane.predict(q)

    results = asyncio.run(together())
    assert isinstance(results[1], InvalidInput) and results[1].field == "candles[10].high"
    for q, got in zip(good, [results[0], results[2], results[3]], strict=True):
        single = asyncio.run(alone(q))
        assert got.prediction == single.prediction and got.decision == single.decision  # type: ignore[attr-defined]
    total = sum(s.requests for s in metrics.tiers(list(registry.family.order)).values())
    assert total == 6


def test_predictions_feed_the_live_counters_in_tiers(client_for, quick_store, make_body):
    with client_for(quick_store) as c:
        for _ in range(3):
            c.post("/predict", json=make_body(tier="M2"))
        c.post("/predict", json=make_body(tier="M0"))
        tiers = {t["name"]: t["live"] for t in c.get("/tiers").json()["tiers"]}
        alone = c.get("/tiers/M2").json()["live"]
    assert alone["share"] == 0.75, "one tier's share is of all tiers' predictions"
    assert tiers["M2"]["requests"] == 3 and tiers["M0"]["requests"] == 1
    assert tiers["M2"]["share"] == 0.75 and tiers["M1"]["share"] == 0.0
    assert tiers["M2"]["p50_us"] > 0 and tiers["M2"]["p99_us"] >= tiers["M2"]["p50_us"]
    assert tiers["M1"]["p50_us"] is None


def test_a_query_with_its_callers_regime_is_routed_by_it_and_keeps_its_windows_signals(
        quick_store: Path, make_body, manifest_data, regime_ends):
    registry = Registry(quick_store)
    family = registry.load()
    plane = DataPlane(registry, Metrics())
    calm = query(make_body(end=regime_ends["calm"]))
    detected = plane.decide(calm, family)
    forced = dataclasses.replace(calm, regime="crisis")
    [answer], _ = plane.predict_many([forced], family)
    assert detected.regime == "calm" and answer.decision.regime == "crisis"
    assert answer.decision.tier == manifest_data["regime"]["tier_map"]["crisis"]
    assert answer.decision.signals == detected.signals
    assert plane.decide_many([calm, forced], family)[1].tier == answer.decision.tier
