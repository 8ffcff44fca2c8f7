"""Windows against the family's training range (issue 13, point 5): the manifest records each feature's
range on the training split; every answer says whether the window lies inside it and names the features
that do not; TIERED_OUT_OF_RANGE=refuse turns such windows into a 422 naming them; /metrics counts them
per tier. The same over a real server: tests/reliability/test_http_edges.py."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from market import ranges
from market.features import FEATURE_NAMES
from models.store import read_current, read_manifest


def absurd(body: dict[str, Any], factor: float = 1e6) -> dict[str, Any]:
    """One bad tick: the last candle's high × factor (still a valid candle)."""
    body = copy.deepcopy(body)
    body["candles"][-1]["high"] *= factor
    return body


def test_the_manifest_records_every_features_training_range(quick_store: Path, dataset: Any) -> None:
    m = read_manifest(quick_store / read_current(quick_store))
    section = m.features.ranges
    assert section is not None
    assert section.quantiles == ranges.QUANTILES
    assert section.rows == len(dataset.train.x)
    assert list(section.bounds) == list(FEATURE_NAMES)
    low, high = np.quantile(dataset.train.x.astype(np.float64), ranges.QUANTILES, axis=0)
    assert [section.bounds[n] for n in FEATURE_NAMES] == list(zip(low.tolist(), high.tolist(), strict=True))


def test_a_window_from_the_training_market_is_inside(client: Any, make_body: Any) -> None:
    out = client.post("/predict", json=make_body()).json()
    assert out["out_of_range"] == {"inside": True, "out": []}


def test_a_bad_tick_is_answered_with_the_features_out_of_range_named(client: Any, make_body: Any) -> None:
    r = client.post("/predict", json=absurd(make_body()))
    assert r.status_code == 200, r.text
    flag = r.json()["out_of_range"]
    assert flag["inside"] is False
    assert "logrange_lag0" in flag["out"] and set(flag["out"]) <= set(FEATURE_NAMES)
    regime = client.post("/regime", json=absurd(make_body())).json()
    assert regime["out_of_range"] == flag


def test_a_batch_flags_only_its_windows_out_of_range(client: Any, make_body: Any) -> None:
    items = [make_body(end=900), absurd(make_body(end=1000)), make_body(end=1100)]
    results = client.post("/predict/batch", json={"items": items}).json()["results"]
    assert [r["out_of_range"]["inside"] for r in results] == [True, False, True]


def test_refuse_mode_answers_422_naming_the_window_and_its_features(quick_store: Path, client_for: Any,
                                                                     make_body: Any) -> None:
    with client_for(quick_store, out_of_range="refuse") as c:
        ok = c.post("/predict", json=make_body())
        refused = c.post("/predict", json=absurd(make_body()))
        batch = c.post("/predict/batch", json={"items": [make_body(), absurd(make_body())]})
        decided = c.post("/regime", json=absurd(make_body()))
        metrics = c.get("/metrics").text
    assert ok.status_code == 200 and ok.json()["out_of_range"]["inside"] is True
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "out_of_training_range" and error["field"] == "candles"
    assert "logrange_lag0 = " in error["message"]
    assert "training split's 0.1% to 99.9% quantiles" in error["message"]
    assert "TIERED_OUT_OF_RANGE=flag" in error["message"]
    assert batch.status_code == 422 and batch.json()["error"]["field"] == "items[1].candles"
    assert decided.status_code == 200 and decided.json()["out_of_range"]["inside"] is False
    tier = decided.json()["tier"]
    assert f'tiered_out_of_range_total{{action="refused",tier="{tier}"}} 2.0' in metrics


def test_metrics_count_flagged_windows_per_tier(quick_store: Path, client_for: Any, make_body: Any) -> None:
    with client_for(quick_store) as c:
        tier = c.post("/predict", json=absurd(make_body())).json()["tier"]
        c.post("/predict", json=make_body())
        metrics = c.get("/metrics").text
    assert f'tiered_out_of_range_total{{action="flagged",tier="{tier}"}} 1.0' in metrics
    assert 'action="refused"' not in metrics


@pytest.mark.parametrize(("margin", "inside"), [(0.0, False), (100.0, True)])
def test_the_margin_widens_the_range(quick_store: Path, client_for: Any, make_body: Any, margin: float,
                                     inside: bool) -> None:
    with client_for(quick_store, range_margin=margin) as c:
        flag = c.post("/predict", json=absurd(make_body(), factor=1.5)).json()["out_of_range"]
    assert flag["inside"] is inside


def test_a_family_without_ranges_is_served_and_says_it_cannot_tell(
        store_copy: Any, client_for: Any, make_body: Any, manifest_editor: Any) -> None:
    store, family = store_copy
    manifest_editor(family, lambda m: m["features"].pop("ranges"))
    with client_for(store, out_of_range="refuse") as c:
        r = c.post("/predict", json=absurd(make_body()))
    assert r.status_code == 200 and r.json()["out_of_range"] is None


def test_a_family_with_ranges_that_miss_a_feature_is_refused_with_the_reason(
        store_copy: Any, manifest_editor: Any) -> None:
    from app.errors import FamilyRefused
    from app.families import check_family

    store, family = store_copy
    manifest_editor(family, lambda m: m["features"]["ranges"]["bounds"].pop("ret_lag0"))
    with pytest.raises(FamilyRefused, match=r"features.ranges: .*missing \['ret_lag0'\]"):
        check_family(store)


def test_open_inference_protocol_flags_or_refuses_rows_out_of_range(quick_store: Path, client_for: Any,
                                                                    dataset: Any, manifest_data: Any) -> None:
    x = dataset.test.x[:3].astype(np.float64)
    x[1, FEATURE_NAMES.index("logrange_lag0")] = 5.0  # a bar whose range is e^5 times its close

    def body(rows: np.ndarray) -> dict[str, Any]:
        return {"inputs": [{"name": manifest_data["input"]["name"], "shape": list(rows.shape),
                            "datatype": "FP32", "data": rows.ravel().tolist()}]}

    with client_for(quick_store) as c:
        flagged = c.post("/v2/models/M2/infer", json=body(x))
        inside = c.post("/v2/models/M2/infer", json=body(x[:1]))
    with client_for(quick_store, out_of_range="refuse") as c:
        refused = c.post("/v2/models/M2/infer", json=body(x))
    assert flagged.status_code == 200, flagged.text
    assert flagged.json()["parameters"] == {"out_of_range": "row 1: logrange_lag0"}
    assert "parameters" not in inside.json()
    assert inside.json()["outputs"][0]["name"] == manifest_data["output"]["name"]
    assert refused.status_code == 400  # the protocol answers every bad request 400
    assert refused.json()["error"].startswith("inputs[0] row 1: outside what family")


def test_tiers_shows_the_ranges_the_windows_are_compared_with(client: Any, manifest_data: Any) -> None:
    assert client.get("/tiers").json()["feature_ranges"] == manifest_data["features"]["ranges"]
