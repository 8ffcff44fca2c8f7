"""Scores on the test split: R², directional accuracy, per regime, oracle share and retention."""

import numpy as np
import pytest

from models.manifest import Metrics
from training.evaluate import Scorer, headline, with_retention


def scorer(task="regression"):
    rng = np.random.default_rng(0)
    y = rng.normal(0.0, 1e-3, 400)
    regimes = np.repeat([0, 1, 2, 3], 100)
    labels = np.where(y > 5e-4, 2, np.where(y < -5e-4, 0, 1))
    return Scorer(y, labels, regimes, oracle_r2=0.5, regime_oracle_r2={"calm": 0.25}, task=task)


def test_a_perfect_regression_scores_r2_one_everywhere_and_its_share_of_the_oracle():
    s = scorer()
    overall, per_regime = s.score(s.y[:, None])
    assert overall.r2 == pytest.approx(1.0) and overall.directional_accuracy == 1.0
    assert overall.oracle_share == pytest.approx(2.0) and overall.rows == 400
    assert sorted(per_regime) == ["calm", "crisis", "normal", "volatile"]
    assert per_regime["calm"].oracle_share == pytest.approx(4.0) and per_regime["normal"].oracle_share is None


def test_a_sign_flipped_prediction_is_always_wrong_about_direction():
    s = scorer()
    overall, _ = s.score(-s.y[:, None])
    assert overall.directional_accuracy == 0.0 and overall.r2 < 0


def test_classification_scores_accuracy_and_direction_from_up_minus_down():
    s = scorer("classification")
    probs = np.eye(3)[s.labels] * 0.8 + 0.2 / 3
    overall, _ = s.score(probs)
    assert overall.accuracy == 1.0 and overall.r2 is None
    assert headline(overall) == 1.0


def test_retention_is_relative_to_the_reference_and_undefined_when_it_has_no_skill():
    assert with_retention(Metrics(r2=0.09), Metrics(r2=0.1)).retention == pytest.approx(0.9)
    assert with_retention(Metrics(r2=0.09), Metrics(r2=-0.01)).retention is None
