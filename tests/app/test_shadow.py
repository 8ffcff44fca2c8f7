"""Shadow scoring: sampled answers run again on every larger tier, after the answer, without changing it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app import shadow
from tests.app.conftest import ClientFor, MakeBody


def without_latency(value: Any) -> Any:
    """The answer with its timings left out (the only part two runs may differ in)."""
    if isinstance(value, dict):
        return {k: without_latency(v) for k, v in value.items() if k != "latency_us"}
    if isinstance(value, list):
        return [without_latency(v) for v in value]
    return value


def requests_of(make_body: MakeBody, regime_ends: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    """Routed by each regime, by an override, by a budget no tier meets and by a generous one; a batch."""
    ends = list(regime_ends.values())
    single = [make_body(end=e) for e in ends]
    single += [make_body(end=ends[0], tier="M1"), make_body(end=ends[-1], max_latency_ms=1e-6),
               make_body(end=ends[-1], max_latency_ms=1e3), make_body(end=ends[0], book=False)]
    batch = {"items": [make_body(end=e) for e in ends] + [make_body(end=ends[0], tier="M0")]}
    return [*(("/predict", b) for b in single), ("/predict/batch", batch)]


def served(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return without_latency(response.json())


def samples(client: TestClient, name: str) -> dict[tuple[str, str, str], float]:
    text = client.get("/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[(s.labels["tier"], s.labels["shadow"], s.labels["regime"])] = s.value
    return out


def wait_for(check, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "the shadow runs did not show up in time"
        time.sleep(0.02)
    return found


def test_shadow_scoring_never_changes_an_answer_or_its_route(
        quick_store: Path, client_for: ClientFor, make_body: MakeBody, regime_ends: dict[str, int]):
    cases = requests_of(make_body, regime_ends)
    with client_for(quick_store, shadow_rate=0.0) as off:
        expected = [served(off, path, body) for path, body in cases]
        assert samples(off, f"{shadow.COMPARED}_total") == {}, "rate 0 runs no shadow"
    with client_for(quick_store, shadow_rate=1.0) as on:
        got = [served(on, path, body) for path, body in cases]
        wait_for(lambda: samples(on, f"{shadow.COMPARED}_total"))
    assert got == expected
    reasons = {a["reason"] for a in expected[:-1]}
    assert {"regime", "override", "budget"} <= reasons, "the cases cover the budget and override paths"


def test_shadow_metrics_appear_after_n_predictions_and_match_the_larger_tiers_answers(
        quick_store: Path, client_for: ClientFor, make_body: MakeBody, regime_ends: dict[str, int]):
    n = 7
    with client_for(quick_store, shadow_rate=1.0) as client:
        routed = served(client, "/predict", make_body(end=regime_ends["calm"]))
        tier, regime = routed["tier"], routed["regime"]["name"]
        order = [t["name"] for t in client.get("/tiers").json()["tiers"]]
        larger = order[:order.index(tier)]
        assert larger, f"calm routes to {tier}, the largest tier: nothing to shadow"
        for _ in range(n - 1):
            served(client, "/predict", make_body(end=regime_ends["calm"]))
        counts = wait_for(lambda: (c := samples(client, f"{shadow.COMPARED}_total"))
                          and all(c.get((tier, s, regime)) == n for s in larger) and c)
        assert set(counts) == {(tier, s, regime) for s in larger}
        live = client.get(f"/tiers/{tier}").json()["live"]["shadow"]
        for s in larger:
            by_override = served(client, "/predict", make_body(end=regime_ends["calm"], tier=s))
            expected = abs(by_override["prediction"] - routed["prediction"])
            stats = live[s][regime]
            assert stats["comparisons"] == n and live[s]["all"]["comparisons"] == n
            assert stats["mean_abs_difference"] == pytest.approx(expected, rel=1e-5, abs=1e-9)
            assert stats["agreement"] == float(np.sign(by_override["prediction"]) ==
                                               np.sign(routed["prediction"]))
        assert client.get(f"/tiers/{larger[0]}").json()["live"]["shadow"] == {}, "nothing is larger than M0"


def test_a_rate_between_samples_about_that_share(quick_store: Path, client_for: ClientFor,
                                                 make_body: MakeBody, regime_ends: dict[str, int]):
    n = 200
    body = {"items": [make_body(end=regime_ends["calm"])] * n}
    with client_for(quick_store, shadow_rate=0.25) as client:
        served(client, "/predict/batch", body)
        counts = wait_for(lambda: samples(client, f"{shadow.COMPARED}_total"))
    per_larger = {key[1]: value for key, value in counts.items()}
    sampled = next(iter(per_larger.values()))
    assert len(set(per_larger.values())) == 1, "a sampled answer runs on every larger tier"
    assert 0.25 * n - 4 * np.sqrt(n * 0.25 * 0.75) < sampled < 0.25 * n + 4 * np.sqrt(n * 0.25 * 0.75)


def test_records_beyond_the_followup_limit_are_dropped_and_counted_not_queued(
        quick_store: Path, client_for: ClientFor, make_body: MakeBody, regime_ends: dict[str, int]):
    with client_for(quick_store, shadow_rate=1.0) as client:
        client.app.state.plane.followup.limit = 2  # type: ignore[attr-defined]  # as if the loop fell behind
        answers = served(client, "/predict/batch", {"items": [make_body(end=regime_ends["calm"])] * 5})
        assert len(answers["results"]) == 5, "every answer is sent, shadowed or not"
        counts = wait_for(lambda: samples(client, f"{shadow.COMPARED}_total"))
        dropped = [s.value for f in text_string_to_metric_families(client.get("/metrics").text)
                   for s in f.samples if s.name == "tiered_followup_dropped_total"]
    assert dropped == [3.0]
    assert set(counts.values()) == {2.0}, "two answers were shadowed, on every larger tier"
