"""The distillation loop on plain tensors: a student, its labels and, optionally, a sequence of teachers.

    loss = α · L_soft(student, teacher; T) + (1 − α) · L_hard(student, labels)

The two losses come with the objective (`Losses`: a target kind from `training.kinds`, e.g. MSE and MSE
for regression; T² · KL of softened distributions and cross-entropy for classes).

Teachers are callables from a batch of inputs to outputs in the student's units (regression values or
logits), or those outputs already computed for the training rows (so one teacher's outputs can serve
several students without running it again). One teacher is plain distillation; several are the
checkpoint curriculum: the budget is cut into equal segments and the student follows the teachers in
order (first checkpoint to final).
Early stopping watches a validation score (default: minus the label loss) and only stops during the
last segment; the best weights are restored at the end. Nothing here knows about markets, so other
experiments (e.g. the sparse-parity benchmark) call `fit` as it is.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

Teacher = Callable[[Tensor], Tensor] | Tensor  # a model, or its outputs on the training rows
Score = Callable[[Tensor, Tensor], float]  # (outputs, targets) → higher is better
StateDict = dict[str, Tensor]


class Losses(Protocol):
    def hard_loss(self, out: Tensor, target: Tensor) -> Tensor: ...

    def soft_loss(self, out: Tensor, teacher_out: Tensor, temperature: float) -> Tensor: ...


@dataclass(frozen=True)
class Objective:
    losses: Losses
    alpha: float = 0.0  # 0: labels only
    temperature: float = 1.0  # used by losses that soften distributions (classes)


@dataclass(frozen=True)
class FitSettings:
    batch_size: int
    lr: float
    max_epochs: float  # budget in passes over the training rows (max_steps overrides it)
    patience: int  # validation checks without improvement before stopping
    weight_decay: float = 0.0
    evals_per_epoch: int = 1
    lr_schedule: Literal["constant", "cosine"] = "constant"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.0  # sgd only
    seed: int = 0  # data order
    keep_checkpoints: int = 0  # K > 0: return K snapshots of this run, evenly spaced, ending at the best
    max_steps: int | None = None
    eval_every: int | None = None  # steps between validation checks; overrides evals_per_epoch
    stop_at: float | None = None  # stop as soon as the validation score reaches this


@dataclass(frozen=True)
class Point:
    """One validation check."""

    step: int
    epoch: float
    teacher: int  # index of the teacher followed (-1: none)
    train_loss: float  # mean training loss since the previous check
    val_loss: float  # label loss on the validation rows
    val_score: float


@dataclass
class FitResult:
    curve: list[Point]
    best_step: int
    best_score: float
    steps: int
    seconds: float
    checkpoints: list[StateDict] = field(default_factory=list)


def distillation_loss(
    out: Tensor, target: Tensor, teacher_out: Tensor | None, objective: Objective
) -> Tensor:
    hard = objective.losses.hard_loss(out, target)
    if teacher_out is None or objective.alpha == 0.0:
        return hard
    soft = objective.losses.soft_loss(out, teacher_out, objective.temperature)
    return objective.alpha * soft + (1.0 - objective.alpha) * hard


@torch.no_grad()
def predict(model: Callable[[Tensor], Tensor], x: Tensor, chunk: int = 65_536) -> Tensor:
    """Outputs for all rows of x, in chunks, with the model in eval mode."""
    if isinstance(model, nn.Module):
        was_training = model.training
        model.eval()
    out = torch.cat([model(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])
    if isinstance(model, nn.Module) and was_training:
        model.train()
    return out


def as_teachers(model: nn.Module, checkpoints: Sequence[StateDict]) -> list[nn.Module]:
    """One frozen copy of `model` per checkpoint, in order."""
    teachers = []
    for state in checkpoints:
        t = copy.deepcopy(model)
        t.load_state_dict(state)
        teachers.append(t.eval().requires_grad_(False))
    return teachers


def plan(rows: int, settings: FitSettings) -> tuple[int, int]:
    """(total optimiser steps, steps between validation checks) for `rows` training rows."""
    steps_per_epoch = math.ceil(rows / settings.batch_size)
    total = settings.max_steps or max(1, round(settings.max_epochs * steps_per_epoch))
    return total, settings.eval_every or max(1, steps_per_epoch // settings.evals_per_epoch)


def fit(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    objective: Objective,
    settings: FitSettings,
    teachers: Sequence[Teacher] = (),
    score: Score | None = None,
    on_eval: Callable[[Point], None] | None = None,
) -> FitResult:
    """Train `model` in place on (x, y) rows; return its learning curve (best weights restored)."""
    started = time.perf_counter()
    x, y = train
    n = x.shape[0]
    assert n == y.shape[0] and n > 0, f"{n} training inputs for {y.shape[0]} targets"
    steps_per_epoch = math.ceil(n / settings.batch_size)
    total, eval_every = plan(n, settings)
    segments = max(1, len(teachers))
    hard_loss = objective.losses.hard_loss
    score = score or (lambda out, target: -float(hard_loss(out, target)))

    opt: torch.optim.Optimizer
    if settings.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                              weight_decay=settings.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    decay = (lambda s: 0.5 * (1.0 + math.cos(math.pi * s / total))) if settings.lr_schedule == "cosine" \
        else (lambda s: 1.0)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(opt, decay)
    order = torch.Generator().manual_seed(settings.seed)

    curve: list[Point] = []
    snapshots: list[StateDict] = []
    best_score, best_step, best_index, stale = -math.inf, 0, -1, 0
    best_state = _clone(model)
    soft: Tensor | None = None
    following, running, seen = -1, 0.0, 0
    perm = torch.randperm(n, generator=order)
    model.train()
    for step in range(total):
        batch = step % steps_per_epoch
        if batch == 0 and step > 0:
            perm = torch.randperm(n, generator=order)
        segment = step * segments // total
        if teachers and segment != following:
            following = segment
            soft = _outputs(teachers[segment], x)
        idx = perm[batch * settings.batch_size:(batch + 1) * settings.batch_size]
        out = model(x[idx])
        loss = distillation_loss(out, y[idx], None if soft is None else soft[idx], objective)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_schedule.step()
        running, seen = running + loss.item(), seen + 1

        if (step + 1) % eval_every and step + 1 < total:
            continue
        val_out = predict(model, val[0])
        point = Point(step + 1, (step + 1) / steps_per_epoch, following, running / seen,
                      float(hard_loss(val_out, val[1])), score(val_out, val[1]))
        running, seen = 0.0, 0
        curve.append(point)
        if on_eval is not None:
            on_eval(point)
        if settings.keep_checkpoints:
            snapshots.append(_clone(model))
        if point.val_score > best_score:
            best_score, best_step, best_index, stale = point.val_score, point.step, len(curve) - 1, 0
            best_state = _clone(model)
        elif segment == segments - 1:
            stale += 1
        if stale >= settings.patience:
            break
        if settings.stop_at is not None and point.val_score >= settings.stop_at:
            break

    model.load_state_dict(best_state)
    model.eval()
    checkpoints = _spaced(snapshots[:best_index + 1], settings.keep_checkpoints)
    return FitResult(curve, best_step, best_score, curve[-1].step,
                     time.perf_counter() - started, checkpoints)


def _outputs(teacher: Teacher, x: Tensor) -> Tensor:
    """A teacher's outputs on all training rows (teachers are fixed, so once per segment)."""
    if isinstance(teacher, Tensor):
        assert teacher.shape[0] == x.shape[0], f"{teacher.shape[0]} teacher outputs for {x.shape[0]} rows"
        return teacher
    return predict(teacher, x)


def _clone(model: nn.Module) -> StateDict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _spaced(snapshots: list[StateDict], k: int) -> list[StateDict]:
    """k snapshots evenly spaced over the run, the last one included (fewer if there are fewer)."""
    if k <= 0 or not snapshots:
        return []
    if k >= len(snapshots):
        return snapshots
    last = len(snapshots) - 1
    return [snapshots[round(last * (i + 1) / k)] for i in range(k)]
