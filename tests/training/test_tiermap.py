"""The learned regime → tier map: on predictions built to have a known answer it picks the expected tiers,
says why, and round-trips through the manifest."""

import itertools

import numpy as np
import pytest

from market import targets
from market.regime import REGIMES
from models.manifest import TierMapEvidence
from training import tiermap
from training.kinds import KINDS

ORDER = ["M0", "M1", "M2", "M3"]
GRADED = {"M0": 1.0, "M1": 0.9, "M2": 0.8, "M3": 0.7}
ROWS = 4_000


def planted(skill_by_regime: dict[str, dict[str, float]], seed: int = 0):
    """y = signal + noise per row; each tier predicts `share · signal` of its regime's rows, so its R² there
    is close to share·(2 − share)·R²_signal: a known ranking per regime."""
    rng = np.random.default_rng(seed)
    regimes = np.repeat(np.arange(len(REGIMES)), ROWS)
    signal = rng.normal(size=regimes.size)
    y = signal + rng.normal(size=regimes.size)
    predictions = {t: np.zeros((regimes.size, 1)) for t in ORDER}
    for k, name in enumerate(REGIMES):
        rows = regimes == k
        for tier, share in skill_by_regime[name].items():
            predictions[tier][rows, 0] = share * signal[rows]
    return predictions, y, regimes


def test_each_regime_goes_to_the_smallest_tier_within_the_tolerance_of_the_best():
    predictions, y, regimes = planted({
        "calm": {"M0": 1.0, "M1": 1.0, "M2": 1.0, "M3": 1.0},  # interchangeable → M3
        "normal": {"M0": 1.0, "M1": 1.0, "M2": 0.97, "M3": 0.6},  # M2 gives up < 1% of R² → M2
        "volatile": {"M0": 1.0, "M1": 0.95, "M2": 0.6, "M3": 0.4},  # M1 within 2%? 0.9975 → M1
        "crisis": {"M0": 1.0, "M1": 0.7, "M2": 0.5, "M3": 0.3},  # only M0 → M0
    })
    evidence = tiermap.learn(KINDS["regression"], targets.get("return"), predictions, y, regimes, ORDER, 0.02)
    assert evidence.chosen == {"calm": "M3", "normal": "M2", "volatile": "M1", "crisis": "M0"}
    assert "within 2% of the best" in evidence.reasons["normal"]
    assert "is the best" in evidence.reasons["crisis"]
    assert evidence.rows == {name: ROWS for name in REGIMES}
    assert evidence.quality["crisis"]["M0"] == pytest.approx(0.5, abs=0.05)


def test_a_family_whose_tiers_are_interchangeable_sends_everything_to_the_smallest_and_says_so():
    same = {"M0": 1.0, "M1": 1.0, "M2": 1.0, "M3": 1.0}
    predictions, y, regimes = planted({name: same for name in REGIMES})
    evidence = tiermap.learn(KINDS["regression"], targets.get("return"), predictions, y, regimes, ORDER, 0.02)
    assert set(evidence.chosen.values()) == {"M3"}
    assert "interchangeable" in evidence.summary


def test_a_regime_where_no_tier_has_skill_goes_to_the_smallest():
    none = {"M0": -0.5, "M1": -0.3, "M2": -0.8, "M3": -1.0}  # anti-correlated: every R² below zero
    skilled = {"M0": 1.0, "M1": 0.5, "M2": 0.5, "M3": 0.5}
    predictions, y, regimes = planted({"calm": skilled, "normal": skilled, "volatile": skilled,
                                       "crisis": none})
    evidence = tiermap.learn(KINDS["regression"], targets.get("return"), predictions, y, regimes, ORDER, 0.02)
    assert evidence.chosen["crisis"] == "M3" and "no tier has skill" in evidence.reasons["crisis"]
    assert evidence.chosen["calm"] == "M0"


def test_a_larger_tolerance_never_picks_a_larger_tier():
    predictions, y, regimes = planted({name: GRADED for name in REGIMES})
    kind, target = KINDS["regression"], targets.get("return")
    sizes = [[ORDER.index(tiermap.learn(kind, target, predictions, y, regimes, ORDER, tol).chosen[r])
              for r in REGIMES] for tol in (0.0, 0.02, 0.1, 0.3, 0.99)]
    for small, large in itertools.pairwise(sizes):
        assert all(a <= b for a, b in zip(small, large, strict=True))


def test_the_evidence_round_trips_through_json():
    predictions, y, regimes = planted({name: GRADED for name in REGIMES})
    evidence = tiermap.learn(KINDS["regression"], targets.get("return"), predictions, y, regimes, ORDER, 0.05)
    assert TierMapEvidence.model_validate_json(evidence.model_dump_json()) == evidence
