"""Against the best classical baseline: paired intervals, a plain verdict, the same per regime, and the
direction's two skills apart."""

import numpy as np

from market import targets
from training import skill
from training.kinds import KINDS


def test_a_better_tier_beats_the_best_baseline_and_an_equal_one_does_not():
    rng = np.random.default_rng(0)
    n = 6_000
    signal = rng.normal(size=n)
    y = signal + rng.normal(size=n)
    regimes = np.repeat([0, 1, 2, 3], n // 4)
    baselines = {"mean": np.zeros((n, 1)), "ridge": 0.5 * signal[:, None]}
    models = {"M0": signal[:, None], "M1": 0.5 * signal[:, None], "M2": 0.45 * signal[:, None],
              "M3": 0.5 * signal[:, None] + 0.01}
    s = skill.compare(KINDS["regression"], targets.get("volatility"), y, regimes, models, baselines, seed=1)
    assert s.best_baseline == "ridge" and s.metric == "r2"
    assert s.overall["M0"].beats and s.overall["M0"].difference.low > 0
    assert not s.overall["M1"].beats and s.overall["M1"].difference.value == 0.0
    assert s.verdict.startswith("M0 (+") and "beats the best baseline (ridge)" in s.verdict
    assert set(s.per_regime) == {"calm", "normal", "volatile", "crisis"}
    assert all(v["M0"].beats for v in s.per_regime.values())
    assert s.block_length >= targets.get("volatility").horizon


def test_no_tier_beating_the_baseline_is_said_plainly():
    rng = np.random.default_rng(1)
    n = 3_000
    y = rng.normal(size=n)
    noise = {f"M{k}": rng.normal(0, 0.1, (n, 1)) for k in range(4)}
    s = skill.compare(KINDS["regression"], targets.get("return"), y, np.zeros(n, dtype=int), noise,
                      {"mean": np.zeros((n, 1))})
    assert s.verdict.startswith("No tier beats the best baseline (mean) on r2: M0 − mean = -")
    assert list(s.per_regime) == ["calm"]


def test_direction_skills_get_their_own_intervals():
    rng = np.random.default_rng(2)
    n = 6_000
    y = rng.integers(0, 3, n)
    moving = y != 1
    # knows flat from moving, guesses the direction
    guess = np.where(moving, np.where(rng.random(n) < 0.5, 0, 2), 1)
    model = np.eye(3)[guess] * 0.7 + 0.1
    models = {f"M{k}": model for k in range(4)}
    s = skill.compare(KINDS["classes"], targets.get("direction"), y, np.zeros(n, dtype=int), models,
                      {"mean": np.full((n, 3), 1 / 3)})
    flat, updown = s.skills["M0"]["flat_vs_moving"], s.skills["M0"]["up_vs_down"]
    assert flat.value == 1.0 and updown.low < 0.5 < updown.high
    assert s.skills["mean"]["flat_vs_moving"].value == 0.5
