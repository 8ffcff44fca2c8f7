"""The distillation loop: the loss pieces, early stopping, the checkpoint curriculum, reproducibility."""

import torch
import torch.nn.functional as F
from torch import nn

from training.distill import FitSettings, Objective, distillation_loss, fit
from training.kinds import KINDS

REGRESSION, CLASSES = KINDS["regression"], KINDS["classes"]


def test_alpha_zero_is_the_pure_label_loss_and_alpha_one_the_pure_teacher_loss():
    g = torch.Generator().manual_seed(0)
    out, y, teacher = (torch.randn(16, 1, generator=g) for _ in range(3))
    assert torch.equal(distillation_loss(out, y, teacher, Objective(REGRESSION, 0.0)), F.mse_loss(out, y))
    pure_teacher = distillation_loss(out, y, teacher, Objective(REGRESSION, 1.0))
    assert torch.allclose(pure_teacher, F.mse_loss(out, teacher))
    mixed = distillation_loss(out, y, teacher, Objective(REGRESSION, 0.25))
    assert torch.allclose(mixed, 0.25 * F.mse_loss(out, teacher) + 0.75 * F.mse_loss(out, y))


def test_classification_soft_loss_is_t_squared_kl_on_softened_distributions():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    temperature = 2.5
    p_t, p_s = torch.softmax(t / temperature, 1), torch.softmax(s / temperature, 1)
    expected = temperature**2 * (p_t * (p_t.log() - p_s.log())).sum(1).mean()
    assert torch.allclose(CLASSES.soft_loss(s, t, temperature), expected, atol=1e-6)
    assert float(CLASSES.soft_loss(t, t, temperature)) == 0.0
    labels = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    assert torch.equal(distillation_loss(s, labels, t, Objective(CLASSES, 0.0, temperature)),
                       CLASSES.hard_loss(s, labels))


def problem(n=2_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return (x[:1500], y[:1500]), (x[1500:], y[1500:])


def settings(**kwargs):
    return FitSettings(**{"batch_size": 100, "lr": 0.01, "max_epochs": 4, "patience": 3,
                          "evals_per_epoch": 3, **kwargs})


def test_fit_learns_and_restores_the_best_validation_weights():
    train, val = problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    result = fit(model, train, val, Objective(REGRESSION), settings())
    with torch.no_grad():
        final = -float(F.mse_loss(model(val[0]), val[1]))
    assert result.curve[-1].val_loss < result.curve[0].val_loss < 10
    assert final == result.best_score == max(p.val_score for p in result.curve)


def test_a_student_with_alpha_one_learns_its_teacher_not_the_labels():
    train, val = problem()
    teacher_out = torch.full_like(train[1], 3.0)
    torch.manual_seed(0)
    student = nn.Linear(4, 1)
    budget = settings(lr=0.1, lr_schedule="cosine", max_epochs=10)
    fit(student, train, val, Objective(REGRESSION, 1.0), budget, teachers=[teacher_out],
        score=lambda out, target: -float(F.mse_loss(out, torch.full_like(out, 3.0))))
    with torch.no_grad():
        out = student(val[0])
    assert float((out - 3.0).abs().mean()) < 0.05 < float(F.mse_loss(out, val[1]))


def test_the_checkpoint_curriculum_follows_the_teachers_in_order_and_stops_only_on_the_last():
    train, val = problem()
    teachers = [torch.full_like(train[1], float(v)) for v in (5.0, -5.0, 0.0)]
    torch.manual_seed(0)
    result = fit(nn.Linear(4, 1), train, val, Objective(REGRESSION, 0.9),
                 settings(max_epochs=6, patience=1), teachers=teachers)
    followed = [p.teacher for p in result.curve]
    assert followed == sorted(followed) and followed[0] == 0 and 2 in followed
    assert result.steps > 2 * (6 * 15) // 3, "stopped before reaching the final teacher"


def test_kept_checkpoints_are_evenly_spaced_and_end_at_the_best_weights():
    train, val = problem()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    result = fit(model, train, val, Objective(REGRESSION), settings(keep_checkpoints=3))
    assert len(result.checkpoints) == 3
    assert all(torch.equal(result.checkpoints[-1][k], v) for k, v in model.state_dict().items())
    assert not torch.equal(result.checkpoints[0]["weight"], result.checkpoints[-1]["weight"])


def test_the_same_seeds_give_the_same_weights():
    train, val = problem()
    weights = []
    for _ in range(2):
        torch.manual_seed(7)
        model = nn.Linear(4, 1)
        fit(model, train, val, Objective(REGRESSION), settings(seed=3))
        weights.append(model.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])
