"""Classical baselines: fitted on the training split only, each the model its name says, in seconds."""

import dataclasses

import numpy as np
import pytest

from market import dataset, targets
from market.sources import synthetic_source
from training import baselines
from training.kinds import KINDS


@pytest.fixture(scope="module")
def source():
    return synthetic_source(30_000, 3)


def scrambled(split: dataset.Split, seed: int) -> dataset.Split:
    """The split with its y replaced by noise of another scale (what a leak would pick up)."""
    rng = np.random.default_rng(seed)
    if split.y.dtype.kind == "i":
        return dataclasses.replace(split, y=rng.integers(0, 3, len(split)))
    return dataclasses.replace(split, y=rng.normal(5.0, 3.0, len(split)).astype(np.float32))


@pytest.mark.parametrize("name", ["volatility", "direction"])
def test_no_baseline_reads_the_test_split_and_only_the_linear_models_strength_reads_validation(source, name):
    ds = dataset.build(source, targets.get(name))
    kind = KINDS[ds.target.kind]
    fitted = {b.name: b.predict(ds.test) for b in baselines.fit(ds, kind)}
    blind = dataclasses.replace(ds, test=scrambled(ds.test, 1))
    again = {b.name: b.predict(ds.test) for b in baselines.fit(blind, kind)}
    for b in fitted:
        np.testing.assert_array_equal(again[b], fitted[b])
    no_val = dataclasses.replace(ds, val=scrambled(ds.val, 2), test=scrambled(ds.test, 3))
    for b in baselines.fit(no_val, kind):
        if b.name != kind.linear_name:
            np.testing.assert_array_equal(b.predict(ds.test), fitted[b.name])


def test_the_regression_baselines_are_the_training_mean_the_last_value_har_and_ridge(source):
    ds = dataset.build(source, targets.get("volatility"))
    found = {b.name: b for b in baselines.fit(ds, KINDS["regression"])}
    assert list(found) == ["mean", "persistence", "HAR", "ridge"]
    np.testing.assert_allclose(found["mean"].predict(ds.test), ds.train.y.mean(dtype=np.float64))
    persistence = found["persistence"].predict(ds.test)[:, 0]
    np.testing.assert_array_equal(persistence, ds.target.persistence(ds.candles, ds.test.ends))
    # HAR is least squares on the three trailing averages: its residuals are orthogonal to them on train
    terms = ds.target.har_terms(ds.candles, ds.train.ends)
    residual = ds.train.y - found["HAR"].predict(ds.train)[:, 0]
    design = np.hstack([np.ones((len(terms), 1)), terms])
    np.testing.assert_allclose(design.T @ residual, 0.0, atol=1e-6 * len(terms))
    assert sum(b.seconds for b in found.values()) < 10


def test_ridge_recovers_a_linear_law_and_logistic_a_multinomial_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 5)).astype(np.float32)
    w = np.array([0.5, -1.0, 0.0, 2.0, 0.25])
    y = (x @ w + 3.0 + rng.normal(0, 0.1, len(x))).astype(np.float32)
    predict, _, coefficients = KINDS["regression"].linear(x[:15_000], y[:15_000], x[15_000:], y[15_000:],
                                                          targets.get("volatility"))
    assert coefficients == 6
    np.testing.assert_allclose(predict(x[15_000:])[:, 0], x[15_000:] @ w + 3.0, atol=0.02)
    logits = np.c_[x @ np.array([1.0, 0, 0, 0, 0]), np.zeros(len(x)), x @ np.array([0, 0, 0, 1.0, 0])]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = (rng.random(len(x))[:, None] > p.cumsum(axis=1)).sum(axis=1)
    predict, _, coefficients = KINDS["classes"].linear(x[:15_000], labels[:15_000], x[15_000:],
                                                       labels[15_000:], targets.get("direction"))
    assert coefficients == 12  # (5 features + intercept) × (3 classes − the reference)
    np.testing.assert_allclose(predict(x[15_000:]), p[15_000:], atol=0.05)


def test_the_sigma_reference_exists_only_where_the_target_asks_and_sigma_is_known(source):
    vol = dataset.build(source, targets.get("volatility"))
    assert baselines.sigma_reference(vol) is not None
    assert baselines.sigma_reference(dataset.build(source, targets.get("volume"))) is None
    real = dataclasses.replace(vol, train=dataclasses.replace(vol.train, truth=targets.Truth()))
    assert baselines.sigma_reference(real) is None
