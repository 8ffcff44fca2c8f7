"""bench.routing in its --quick mode over the suite's quick family (and a quick family of real candles when
../shared/data/ohlcv is present): every policy is scored, costs add up, the threshold sweep spans the
tiers, and the tables render. Also: a family whose data cannot be rebuilt exactly is refused.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench import routing
from bench.family import Store

pytestmark = pytest.mark.slow

TIERS = ("M0", "M1", "M2", "M3")
REGIMES = ("calm", "normal", "volatile", "crisis")
POLICIES = {"routed", "oracle router", *(f"always {t}" for t in TIERS)}


def other_map(stream: dict[str, Any]) -> str:
    """The policy that routes with the map not in force (the suite's family is trained with the fixed)."""
    return f"routed, {'learned' if stream['tier_map_source'] == 'fixed' else 'fixed'} map"
REAL = sorted(routing.OHLCV.glob("*.csv")) if routing.OHLCV.is_dir() else []


@pytest.fixture(scope="module")
def quick(quick_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("routing")
    return routing.run(True, out, models=quick_store), out


@pytest.fixture(scope="module")
def synthetic(quick: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    return quick[0]["streams"][0]


def test_synthetic_stream_scores_every_policy_with_finite_figures(synthetic):
    assert synthetic["truth"] and set(synthetic["policies"]) == {*POLICIES, other_map(synthetic)}
    for name, p in synthetic["policies"].items():
        assert math.isfinite(p["r2"]) and 0.0 < p["directional_accuracy"] < 1.0, name
        assert math.isfinite(p["compute_us"]) and p["compute_us"] > 0, name
        assert math.isclose(sum(p["shares"].values()), 1.0), name


def test_always_one_tier_costs_exactly_that_tiers_latency(synthetic):
    for tier in TIERS:
        p = synthetic["policies"][f"always {tier}"]
        assert p["shares"][tier] == 1.0
        assert math.isclose(p["compute_us"], synthetic["latency_us"][tier])


def test_routed_compute_is_the_traffic_weighted_latency(synthetic):
    p = synthetic["policies"]["routed"]
    weighted = sum(p["shares"][t] * synthetic["latency_us"][t] for t in TIERS)
    assert math.isclose(p["compute_us"], weighted)
    assert {t for t in TIERS if p["shares"][t] > 0} <= set(synthetic["tier_map"].values())
    fixed = p if synthetic["tier_map_source"] == "fixed" else synthetic["policies"][other_map(synthetic)]
    assert all(fixed["shares"][t] > 0 for t in TIERS)


def test_every_learned_map_is_replayed_once_and_a_larger_tolerance_never_picks_a_larger_tier(synthetic):
    curve = synthetic["tolerance_curve"]
    maps = [tuple(TIERS.index(p["tier_map"][r]) for r in REGIMES) for p in curve]
    assert len(set(maps)) == len(maps)
    assert [p["tolerance"] for p in curve] == sorted(p["tolerance"] for p in curve)
    for larger, smaller in itertools.pairwise(maps):  # a larger tolerance never picks a larger tier
        assert all(a <= b for a, b in zip(larger, smaller, strict=True))
    learned = synthetic["tier_map"] if synthetic["tier_map_source"] == "learned" else None
    assert learned is None or learned in [p["tier_map"] for p in curve]


def test_per_regime_rows_cover_the_whole_test_split(synthetic):
    per_regime = synthetic["policies"]["routed"]["per_regime"]
    assert set(per_regime) == {"calm", "normal", "volatile", "crisis"}
    assert sum(r["rows"] for r in per_regime.values()) == synthetic["rows"]


def test_sweep_runs_from_nearly_all_crisis_to_nearly_all_calm_through_the_default(synthetic):
    sweep, tier_map = synthetic["sweep"], synthetic["tier_map"]
    assert max(p["shares"][tier_map["crisis"]] for p in sweep) > 0.9
    assert max(p["shares"][tier_map["calm"]] for p in sweep) > 0.9
    default = [p for p in sweep if p["shift"] == 0.0 and p["scale"] == 1.0]
    routed = synthetic["policies"]["routed"]
    assert len(default) == 1
    assert math.isclose(default[0]["compute_us"], routed["compute_us"])
    assert math.isclose(default[0]["quality"], routed["quality"])


def test_goal_is_judged_against_always_m0(synthetic):
    g, p = synthetic["goal"], synthetic["policies"]
    assert math.isclose(g["compute_of_m0"], p["routed"]["compute_us"] / p["always M0"]["compute_us"])
    assert g["met"] == (g["quality_of_m0"] >= 0.98 and g["compute_of_m0"] <= 0.40)


def test_real_candles_are_replayed_when_present_and_skipped_cleanly_otherwise(quick):
    result, _ = quick
    if not REAL:
        assert len(result["streams"]) == 1 and result["real_skipped"]
        return
    assert len(result["streams"]) == 2 and not result["real_skipped"]
    real = result["streams"][1]
    assert not real["truth"] and "oracle router" not in real["policies"]
    assert real["family"]["source"]["kind"] == "csv"
    assert sum(r["rows"] for r in real["policies"]["routed"]["per_regime"].values()) == real["rows"]


def test_markdown_names_every_policy_and_the_goal_and_the_plot_is_written(quick):
    result, out = quick
    text = routing.markdown(result)
    for name in POLICIES:
        assert f"| {name} |" in text, name
    assert "≥98% of M0's quality at ≤40% of its compute" in text
    assert json.loads(json.dumps(result))["goal"]["compute_of_m0"] == 0.40
    assert (out / "routing.png").stat().st_size > 0


def test_a_family_whose_data_changed_is_refused(quick_store):
    store = Store.read(quick_store)
    changed = store.manifest.model_copy(update={"source": {**store.manifest.source, "sha256": "0" * 64}})
    with pytest.raises(ValueError, match="sha256"):
        routing.rebuild(Store(store.path, store.directory, changed, None), routing.OHLCV)
