"""Scores on the test split: the kind's metrics, per regime, oracle share and retention."""

import numpy as np
import pytest

from market import targets
from models.manifest import Metrics
from training.evaluate import Scorer
from training.kinds import KINDS


def scorer(name="return", oracle=None):
    rng = np.random.default_rng(0)
    target = targets.get(name)
    y = rng.integers(0, 3, 400) if target.classes else rng.normal(0.0, 1e-3, 400)
    regimes = np.repeat([0, 1, 2, 3], 100)
    per_regime = {"calm": Metrics(r2=0.25)} if oracle else None
    return Scorer(KINDS[target.kind], target, y, regimes, oracle, per_regime)


def test_a_perfect_regression_scores_r2_one_everywhere_and_its_share_of_the_oracle():
    s = scorer(oracle=Metrics(r2=0.5))
    overall, per_regime = s.score(s.y[:, None])
    assert overall.r2 == pytest.approx(1.0) and overall.directional_accuracy == 1.0
    assert overall.oracle_share == pytest.approx(2.0) and overall.rows == 400
    assert sorted(per_regime) == ["calm", "crisis", "normal", "volatile"]
    assert per_regime["calm"].oracle_share == pytest.approx(4.0) and per_regime["normal"].oracle_share is None


def test_a_sign_flipped_prediction_is_always_wrong_about_direction():
    s = scorer()
    overall, _ = s.score(-s.y[:, None])
    assert overall.directional_accuracy == 0.0 and overall.r2 < 0


def test_a_target_without_a_sign_reports_no_directional_accuracy():
    s = scorer("volatility")
    overall, _ = s.score(s.y[:, None] * 0.5)
    assert overall.directional_accuracy is None and overall.r2 is not None


def test_classes_score_balanced_accuracy_and_each_skill():
    s = scorer("direction")
    probs = np.eye(3)[s.y] * 0.8 + 0.2 / 3
    overall, _ = s.score(probs)
    assert overall.balanced_accuracy == 1.0 and overall.accuracy == 1.0 and overall.r2 is None
    assert overall.skills == {"flat_vs_moving": 1.0, "up_vs_down": 1.0}
    assert s.headline(overall) == 1.0


def test_telling_flat_from_moving_is_not_a_directional_skill():
    """A model that knows only whether a bar moves (it says flat or a coin-flip direction) scores on the
    flat-vs-moving skill and stays at chance on up-vs-down."""
    s = scorer("direction")
    rng = np.random.default_rng(3)
    moving = s.y != 1
    guess = np.where(rng.random(len(s.y)) < 0.5, 0, 2)
    probs = np.eye(3)[np.where(moving, guess, 1)] * 0.9 + 0.1 / 3
    overall, _ = s.score(probs)
    assert overall.skills["flat_vs_moving"] == 1.0
    assert abs(overall.skills["up_vs_down"] - 0.5) < 0.08


def test_retention_is_the_share_of_the_references_skill_and_undefined_when_it_has_none():
    s, c = scorer(), scorer("direction")
    assert s.with_retention(Metrics(r2=0.09), Metrics(r2=0.1)).retention == pytest.approx(0.9)
    assert s.with_retention(Metrics(r2=0.09), Metrics(r2=-0.01)).retention is None
    # for classes, skill is balanced accuracy above chance (1/3)
    half = c.with_retention(Metrics(balanced_accuracy=0.4), Metrics(balanced_accuracy=1 / 3 + 2 / 15))
    assert half.retention == pytest.approx(0.5)
