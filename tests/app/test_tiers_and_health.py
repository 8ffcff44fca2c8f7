"""GET /tiers, /tiers/{name}, /healthz, /readyz, /metrics, and the OpenAPI document."""

from __future__ import annotations

import re

from app import oip


def test_tiers_describes_the_family_and_every_tier(client, manifest_data):
    family = client.get("/tiers").json()
    assert family["family_id"] == manifest_data["family_id"]
    assert family["source"] == manifest_data["source"] and family["target"] == manifest_data["target"]
    assert set(family["classical"]) == set(manifest_data["classical"]) and family["verdict"]
    assert family["window"] == 48 and family["tier_map"] == manifest_data["regime"]["tier_map"]
    assert family["thresholds"] == manifest_data["regime"]["thresholds"]
    assert family["tier_map_source"] == manifest_data["regime"]["tier_map_source"]
    assert family["tier_map_evidence"] == manifest_data["regime"]["learned"]
    assert set(family["baselines"]) == set(manifest_data["baselines"])
    by_name = {t["name"]: t for t in manifest_data["tiers"]}
    assert [t["name"] for t in family["tiers"]] == ["M0", "M1", "M2", "M3"]
    for tier in family["tiers"]:
        entry = by_name[tier["name"]]
        for key in ("role", "teacher", "layers", "width", "params", "compression", "alpha", "temperature",
                    "sha256", "parity_max_abs_diff", "file"):
            assert tier[key] == entry[key], key
        assert tier["metrics"]["r2"] == entry["metrics"]["r2"]
        assert set(tier["per_regime"]) == set(entry["per_regime"])
        assert tier["available"] is True and tier["problem"] is None
        assert tier["latency_us"] > 0 and tier["latency_us_at_training"] == entry["latency_us_batch1"]
        assert set(tier["live"]) == {"requests", "share", "p50_us", "p99_us", "shadow", "realised"}
    lineage = {t["name"]: t["teacher"] for t in family["tiers"]}
    assert lineage == {"M0": None, "M1": "M0", "M2": "M1", "M3": "M2"}


def test_one_tier_is_described_alone(client):
    alone = client.get("/tiers/M2").json()
    listed = next(t for t in client.get("/tiers").json()["tiers"] if t["name"] == "M2")
    assert alone == listed


def test_an_unknown_tier_is_404(client):
    r = client.get("/tiers/M9")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_tier"


def test_healthz_and_readyz_say_alive_and_ready(client, manifest_data):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "family_id": manifest_data["family_id"],
                            "available": ["M0", "M1", "M2", "M3"], "unavailable": {}, "feeds": {}}


def test_metrics_count_predictions_by_tier_regime_and_reason_with_latency_histograms(
        quick_store, client_for, make_body, regime_ends):
    with client_for(quick_store) as c:
        for _ in range(2):
            c.post("/predict", json=make_body(end=regime_ends["calm"]))
        c.post("/predict", json=make_body(end=regime_ends["calm"], tier="M1"))
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'tiered_predictions_total{reason="regime",regime="calm",tier="M3"} 2.0' in text
    assert 'tiered_predictions_total{reason="override",regime="calm",tier="M1"} 1.0' in text
    assert re.search(r'^tiered_family_info\{family_id="[^"]+"\} 1.0$', text, re.M)
    assert 'tiered_tier_available{tier="M0"} 1.0' in text
    bucket = re.compile(r'^tiered_prediction_duration_seconds_bucket\{le="[^"]+",tier="M3"\} ([0-9.]+)$',
                        re.M)
    buckets = [float(v) for v in bucket.findall(text)]
    assert buckets == sorted(buckets) and buckets[-1] == 2
    assert 'tiered_prediction_duration_seconds_count{tier="M3"} 2.0' in text
    for line in text.splitlines():
        assert line.startswith("#") or re.match(r"^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$", line), line


def test_openapi_documents_every_endpoint_with_examples_and_the_error_shape(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/predict", "/predict/batch", "/regime", "/tiers", "/tiers/{name}", "/admin/reload",
                 "/healthz", "/readyz", "/metrics", "/v2", "/v2/health/live", "/v2/health/ready",
                 "/v2/models/{model}", "/v2/models/{model}/ready", "/v2/models/{model}/infer",
                 "/v2/models/{model}/versions/{version}", "/v2/models/{model}/versions/{version}/ready",
                 "/v2/models/{model}/versions/{version}/infer"):
        assert path in paths, path
    assert "/bench/bare" not in paths
    predict = paths["/predict"]["post"]
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PredictResponse")
    examples = predict["requestBody"]["content"]["application/json"]["examples"]
    assert isinstance(examples["objects"]["value"]["candles"], list)
    assert isinstance(examples["columns"]["value"]["candles"], dict)
    assert examples["bybit"]["value"]["bybit_kline"][0][1].replace(".", "").isdigit()
    answer = client.post("/predict", json=examples["columns"]["value"]).json()
    example = predict["responses"]["200"]["content"]["application/json"]["example"]
    assert set(example) == set(answer) and set(example["regime"]) == set(answer["regime"])
    for name in ("PredictRequest", "BatchRequest", "PredictResponse", "InferenceRequest", "CandleColumns"):
        assert name in spec["components"]["schemas"], name
    assert client.get("/docs").status_code == 200


def test_openapi_caps_are_the_configured_limits(quick_store, client_for):
    with client_for(quick_store, max_candles=300, max_batch_items=7) as c:
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
    candles = schemas["PredictRequest"]["properties"]["candles"]["anyOf"]
    assert {form.get("maxItems") for form in candles if form.get("type") == "array"} == {300}
    assert schemas["CandleColumns"]["properties"]["close"]["maxItems"] == 300
    assert schemas["PredictRequest"]["properties"]["bybit_kline"]["anyOf"][0]["maxItems"] == 300
    assert schemas["BatchRequest"]["properties"]["items"]["maxItems"] == 7
    data = schemas["RequestInput"]["properties"]["data"]["anyOf"][0]  # or null: binary data follows
    assert data["maxItems"] == oip.max_values(7, 300) == 7 * 300 * 6  # a batch of the routed model's windows


def test_cors_is_off_unless_origins_are_configured(quick_store, client_for):
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    with client_for(quick_store) as c:
        assert "access-control-allow-origin" not in c.options("/predict", headers=preflight).headers
    with client_for(quick_store, cors_origins=["https://ui.example"]) as c:
        r = c.options("/predict", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://ui.example"
        other = c.options("/predict", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
