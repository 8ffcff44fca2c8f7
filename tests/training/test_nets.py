"""The tiers' architecture: parameter counts of the default family and the shapes of every schedule."""

import numpy as np
import pytest
import torch

from market.features import FEATURE_NAMES
from training import nets
from training.kinds import KINDS, Scale

F = len(FEATURE_NAMES)


def build(layers, width, **kwargs):
    return nets.MLP(np.zeros(F), np.ones(F), nets.Shape(layers, width), 1, **kwargs)


def test_default_family_has_the_pinned_parameter_counts_within_ten_percent_of_the_write_up():
    counts = [nets.count_params(build(s.layers, s.width)) for s in nets.family_shapes("combined")]
    assert counts == [549_121, 235_201, 71_809, 9_793]
    for count, target in zip(counts, (530_000, 225_000, 70_000, 9_000), strict=True):
        assert abs(count - target) / target < 0.10, (count, target)
    assert counts[0] / counts[3] >= 50


@pytest.mark.parametrize("schedule", ["width", "depth"])
def test_width_only_and_depth_only_schedules_shrink_along_one_axis(schedule):
    shapes = nets.family_shapes(schedule)
    fixed = {s.layers for s in shapes} if schedule == "width" else {s.width for s in shapes}
    assert len(fixed) == 1
    counts = [nets.count_params(build(s.layers, s.width)) for s in shapes]
    # Depth-only ends at one layer of 256, whose input layer alone is 43 × 256 weights: 48× smaller.
    assert counts == sorted(counts, reverse=True) and counts[0] / counts[-1] > 45


def test_normalisation_and_output_scaling_travel_inside_the_exported_module():
    mean, std = np.full(F, 5.0), np.full(F, 2.0)
    net = nets.MLP(mean, std, nets.Shape(2, 8), 1)
    deployed = KINDS["regression"].head(net, Scale(mean=0.001, std=0.01))
    x = torch.from_numpy(np.random.default_rng(0).normal(5.0, 2.0, (4, F)).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(deployed(x), net(x) * 0.01 + 0.001)
        assert torch.allclose(net.normalize(x), (x - 5.0) / 2.0)


def test_a_classes_head_returns_probabilities_over_the_networks_outputs():
    net = nets.MLP(np.zeros(F), np.ones(F), nets.Shape(1, 4), 5)
    probs = KINDS["classes"].head(net, Scale())(torch.randn(3, F))
    assert probs.shape == (3, 5) and torch.allclose(probs.sum(dim=1), torch.ones(3))


def test_a_constant_feature_is_centred_instead_of_divided_by_zero():
    net = nets.MLP(np.zeros(F), np.zeros(F), nets.Shape(1, 4), 1)
    assert torch.isfinite(net(torch.ones(2, F))).all()
