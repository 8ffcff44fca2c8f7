"""The router's order: override → regime → latency budget → nearest available tier (larger first)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.errors import NoTierAvailable, UnknownTier
from app.registry import Family, Registry
from app.router import nearest_available, route
from market.regime import REGIMES


@pytest.fixture(scope="module")
def family(quick_store: Path) -> Family:
    registry = Registry(quick_store)
    return registry.load()


def without(family: Family, *names: str) -> Family:
    """The same family with some tiers made unavailable."""
    tiers = {n: dataclasses.replace(t, session=None, problem="test") if n in names else t
             for n, t in family.tiers.items()}
    return dataclasses.replace(family, tiers=tiers)


def test_tiers_are_ordered_largest_first(family):
    assert family.order == ("M0", "M1", "M2", "M3")


@pytest.mark.parametrize("regime", REGIMES)
def test_each_regime_routes_to_its_tier_from_the_manifest(family, regime):
    r = route(family, regime)
    assert (r.tier, r.requested, r.reason) == (family.manifest.regime.tier_map[regime],) * 2 + ("regime",)


def test_an_available_override_wins_over_the_regime(family):
    r = route(family, "calm", override="M0")
    assert (r.tier, r.requested, r.reason) == ("M0", "M0", "override")


def test_an_unknown_override_is_refused_naming_the_field(family):
    with pytest.raises(UnknownTier) as e:
        route(family, "calm", override="M7", field="items[3].tier")
    assert e.value.field == "items[3].tier"


@pytest.mark.parametrize(("missing", "override", "expected"), [
    (("M1",), "M1", "M0"),  # the larger neighbour first, not the calm regime's M3
    (("M1", "M0"), "M1", "M2"),
    (("M3",), "M3", "M2"),
])
def test_an_unavailable_override_falls_back_to_its_nearest_neighbour(family, missing, override, expected):
    r = route(without(family, *missing), "calm", override=override)
    assert (r.tier, r.requested, r.reason) == (expected, override, "fallback")


@pytest.mark.parametrize(("missing", "wanted", "expected"), [
    (("M2",), "M2", "M1"),  # larger neighbour first
    (("M3",), "M3", "M2"),  # the smallest has only a larger neighbour
    (("M0",), "M0", "M1"),  # the largest has only a smaller neighbour
    (("M1", "M0"), "M1", "M2"),
    (("M2", "M1"), "M2", "M3"),  # M3 is one step away, M0 two
    (("M1", "M2", "M3"), "M3", "M0"),
])
def test_an_unavailable_tier_falls_back_to_the_nearest_larger_first(family, missing, wanted, expected):
    assert nearest_available(without(family, *missing), wanted) == expected


def test_a_regime_tier_that_is_unavailable_is_answered_by_the_fallback(family):
    r = route(without(family, "M2"), "normal")
    assert (r.tier, r.requested, r.reason) == ("M1", "M2", "fallback")


def test_no_available_tier_is_a_503(family):
    with pytest.raises(NoTierAvailable):
        route(without(family, *family.order), "normal")


def test_a_budget_that_every_tier_fits_changes_nothing(family):
    r = route(family, "crisis", budget_ms=60_000)
    assert (r.tier, r.reason) == ("M0", "regime")


def test_a_budget_moves_down_to_the_largest_tier_that_fits(family):
    latency = {n: t.latency_us for n, t in family.tiers.items()}
    for budget_us in sorted(v for v in latency.values() if v is not None):
        r = route(family, "crisis", budget_ms=budget_us / 1e3)
        fitting = [n for n in family.order if latency[n] is not None and latency[n] <= budget_us]
        assert r.tier == fitting[0], (budget_us, latency)
        assert r.reason == ("regime" if r.tier == "M0" else "budget")


def test_a_budget_nothing_fits_takes_the_fastest_tier_no_larger_than_chosen(family):
    r = route(family, "volatile", budget_ms=1e-9)
    smaller = [family.tiers[n] for n in ("M1", "M2", "M3")]
    assert r.tier == min(smaller, key=lambda t: t.latency_us or 0.0).name
    assert r.reason in ("budget", "regime")


def test_a_budget_never_moves_up(family):
    r = route(family, "calm", budget_ms=60_000)
    assert (r.tier, r.reason) == ("M3", "regime")


def test_a_budget_skips_unavailable_tiers(family):
    r = route(without(family, "M1", "M2"), "crisis", budget_ms=1e-9)
    assert r.tier in ("M0", "M3") and r.tier != "M1"


# Through HTTP, on damaged copies of the family.

def break_tier(family_dir: Path, name: str) -> None:
    (family_dir / f"{name}.onnx").write_bytes(b"not an onnx file")


def test_predict_over_http_routes_by_regime_for_windows_of_every_regime(client, make_body, regime_ends,
                                                                          manifest_data):
    tier_map = manifest_data["regime"]["tier_map"]
    assert set(regime_ends) == set(REGIMES), "the quick family's training data holds every regime"
    for regime, end in regime_ends.items():
        out = client.post("/predict", json=make_body(end=end)).json()
        assert (out["regime"]["name"], out["tier"], out["reason"]) == (regime, tier_map[regime], "regime")


def test_predict_over_http_reports_budget_override_and_fallback(
        store_copy, client_for, make_body, regime_ends):
    store, family_dir = store_copy
    break_tier(family_dir, "M1")
    with client_for(store) as c:
        override = c.post("/predict", json=make_body(end=regime_ends["calm"], tier="M0")).json()
        budget = c.post("/predict", json=make_body(end=regime_ends["crisis"], max_latency_ms=1e-9)).json()
        fallback = c.post("/predict", json=make_body(end=regime_ends["volatile"])).json()
        asked = c.post("/predict", json=make_body(end=regime_ends["calm"], tier="M1")).json()
    assert (override["tier"], override["reason"]) == ("M0", "override")
    assert budget["reason"] == "budget" and budget["tier"] in ("M2", "M3")
    assert (fallback["requested_tier"], fallback["tier"], fallback["reason"]) == ("M1", "M0", "fallback")
    assert (asked["requested_tier"], asked["tier"], asked["reason"]) == ("M1", "M0", "fallback")


def test_predict_is_503_when_no_tier_loaded(store_copy, client_for, make_body):
    store, family_dir = store_copy
    for name in ("M0", "M1", "M2", "M3"):
        break_tier(family_dir, name)
    with client_for(store) as c:
        r = c.post("/predict", json=make_body())
        ready = c.get("/readyz")
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_tier_available"
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
