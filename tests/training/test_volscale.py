"""Volatility scaling of a return target: the forecast is a least-squares HAR fit, the same in numpy and
inside the exported graph, and the head multiplies back exactly what training divided by."""

import numpy as np
import pytest
import torch

from market.features import FEATURE_NAMES
from training import nets, volscale
from training.kinds import KINDS, Scale

F = len(FEATURE_NAMES)


def features(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, F)).astype(np.float32)
    x[:, FEATURE_NAMES.index("spread_bps")] = rng.uniform(0.5, 30.0, n)
    return x


def test_the_fit_recovers_a_planted_har_relation():
    x = features(20_000)
    cols = [FEATURE_NAMES.index(n) for n in volscale.COLUMNS]
    planted = (-1.5 + 0.1 * x[:, cols[0]] + 0.4 * x[:, cols[1]] + 0.45 * x[:, cols[2]]
               + 0.2 * np.log(x[:, cols[3]]))
    fitted = volscale.fit(x, planted.astype(np.float64))
    assert fitted.bias == pytest.approx(-1.5, abs=1e-4)
    np.testing.assert_allclose(fitted.weights, [0.1, 0.4, 0.45, 0.2], atol=1e-4)


def test_the_graph_computes_the_numpy_forecast_and_clamps_absurd_windows():
    x = features(64, seed=1)
    x[0, FEATURE_NAMES.index("logrange_mean22")] = 1e30  # an absurd window must not overflow
    scale = volscale.VolatilityScale(tuple(FEATURE_NAMES.index(n) for n in volscale.COLUMNS),
                                     (False, False, False, True), (0.1, 0.4, 0.45, 0.2), -1.5)
    with torch.no_grad():
        graph = scale.module()(torch.from_numpy(x)).numpy()[:, 0]
    np.testing.assert_allclose(graph, scale(x), rtol=1e-5)
    assert np.isfinite(graph).all() and graph[0] == pytest.approx(np.exp(volscale.LOG_BOUNDS[1]), rel=1e-5)


def test_the_head_multiplies_back_what_training_divided_by():
    x = features(32, seed=2)
    scale = Scale(mean=0.01, std=0.9, volatility=volscale.VolatilityScale((0, 1), (False, False),
                                                                          (0.5, -0.2), -6.0))
    kind = KINDS["regression"]
    y = np.random.default_rng(3).normal(0.0, 1e-3, 32)
    encoded = kind.encode(y, x, scale).numpy()[:, 0]
    torch.manual_seed(0)
    net = nets.MLP(np.zeros(F), np.ones(F), nets.Shape(1, 4), 1)
    with torch.no_grad():
        served = kind.head(net, scale)(torch.from_numpy(x)).numpy()[:, 0]
        raw = net(torch.from_numpy(x)).numpy()[:, 0]
    # served = (raw · std + mean) · σ̂ and encoded = (y / σ̂ − mean) / std: the same map, both ways.
    sigma = scale.volatility(x)
    np.testing.assert_allclose(served, (raw * 0.9 + 0.01) * sigma, rtol=1e-5)
    np.testing.assert_allclose((encoded * 0.9 + 0.01) * sigma, y, rtol=1e-4, atol=1e-9)
