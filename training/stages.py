"""One stage of a family: a network of a given shape trained on labels or distilled from a teacher.

`train_stage` is the one way a network of the family is trained; `training.job` builds the family with it
and `bench.distill` its comparisons, so both seed, size and budget a stage the same way:

    data = stages.tensors(ds)
    m0 = stages.train_stage(data, shape, index=0, seed=7, objective=Objective(data.kind), budget=cfg.teacher,
                            family=cfg.family)
    m1 = stages.train_stage(data, shape1, index=1, seed=7, objective=Objective(data.kind, 0.9, 4.0),
                            budget=cfg.student, family=cfg.family, teacher=m0)

Seeding: the stage at position `index` of a run with seed s draws its initial weights and data order from
s · 1000 + index (baselines of M3's shape share M3's index, so they differ only in what they learn from).
A teacher's outputs on the training rows (per checkpoint when the curriculum is on) are computed once and
kept on the teacher, so M0's serve both M1 and the one-shot baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from market.dataset import Dataset
from training import kinds, nets
from training.config import FamilyConfig, FitConfig
from training.distill import (
    FitResult,
    FitSettings,
    Objective,
    Point,
    Teacher,
    as_teachers,
    fit,
    plan,
    predict,
)
from training.errors import TrainingError
from training.kinds import Kind, Scale


@dataclass(frozen=True)
class Tensors:
    """A data set as the networks see it; normalisation statistics from the training split only."""

    kind: Kind
    width: int  # outputs per row
    x_mean: np.ndarray  # (F,) built into every network
    x_std: np.ndarray
    x_train: torch.Tensor
    y_train: torch.Tensor  # standardised values (n, 1), or class indices (n,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    scale: Scale  # what the exported head undoes


def tensors(ds: Dataset) -> Tensors:
    for name, split in (("train", ds.train), ("validation", ds.val), ("test", ds.test)):
        bad = int((~np.isfinite(split.x)).any(axis=1).sum())
        if bad:
            raise TrainingError(f"{bad} {name} rows hold non-finite features; check the source data")
    kind = kinds.of(ds.target)
    scale = kind.scale(ds)
    x = ds.train.x
    return Tensors(kind, ds.target.width, x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64),
                   torch.from_numpy(x), kind.encode(ds.train.y, x, scale), torch.from_numpy(ds.val.x),
                   kind.encode(ds.val.y, ds.val.x, scale), scale)


@dataclass
class Trained:
    """A trained network, how it was trained, and (once a student asked) its outputs on the training rows."""

    net: nets.MLP
    result: FitResult
    cpu_seconds: float  # this process's CPU time for the stage: steady when other jobs share the cores
    outputs: list[torch.Tensor] | None = None

    def soft_targets(self, x_train: torch.Tensor) -> list[Teacher]:
        """The outputs a student distils from: one per kept checkpoint (the curriculum), else the final."""
        if self.outputs is None:
            checkpoints = self.result.checkpoints
            models = as_teachers(self.net, checkpoints) if checkpoints else [self.net]
            self.outputs = [predict(m, x_train) for m in models]
        return list(self.outputs)


def train_stage(data: Tensors, shape: nets.Shape, *, index: int, seed: int, objective: Objective,
                budget: FitConfig, family: FamilyConfig, teacher: Trained | None = None, keep: int = 0,
                on_eval: Callable[[Point], None] | None = None) -> Trained:
    """Train the network of `shape` (position `index` in the family) on labels, or from `teacher`;
    keep `keep` checkpoints of it for a curriculum."""
    cpu = time.process_time()
    teachers = teacher.soft_targets(data.x_train) if teacher else []
    stage_seed = seed * 1000 + index
    torch.manual_seed(stage_seed)
    net = nets.MLP(data.x_mean, data.x_std, shape, data.width, family.input_skip, family.activation)
    settings = FitSettings(**budget.model_dump(), seed=stage_seed, keep_checkpoints=keep)
    result = fit(net, (data.x_train, data.y_train), (data.x_val, data.y_val), objective, settings,
                 teachers=teachers, on_eval=on_eval)
    return Trained(net, result, time.process_time() - cpu)


def steps(data: Tensors, budget: FitConfig) -> tuple[int, int]:
    """(optimiser steps, steps between validation checks) of a stage with this budget."""
    return plan(len(data.x_train), FitSettings(**budget.model_dump()))
