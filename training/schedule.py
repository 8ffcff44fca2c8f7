"""The distillation curriculum: temperature and soft-loss weight for each student stage.

    T_k = max(t_min, t_max · (1 − k/N')^γ)      α_k = max(alpha_min, alpha_max · (1 − k/N'))
    k = 1..N students, N' = N + offset

Literally (offset 0, no floors) the last stage gets T = 0 and α = 0: it would not distill at all and
its soft targets would be undefined. The offset keeps the last stage inside the schedule and the
floors (both > 0, see `ScheduleConfig`) guarantee it; both are explicit in the config. Every stage's
values are returned and recorded in the manifest and the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.config import ScheduleConfig


@dataclass(frozen=True)
class Stage:
    k: int  # 1..N: the student M_k, taught by M_{k-1}
    alpha: float  # weight of the soft (teacher) loss
    temperature: float  # softens both distributions (classification only)


def stages(cfg: ScheduleConfig, n: int) -> list[Stage]:
    """Settings for the n student stages M1..Mn."""
    if n < 1:
        raise ValueError(f"a family needs at least one student stage, got n = {n}")
    horizon = n + cfg.offset
    out = []
    for k in range(1, n + 1):
        remaining = 1.0 - k / horizon  # in [0, 1); 0 only for the last stage with offset 0
        temperature = max(cfg.t_min, cfg.t_max * remaining**cfg.gamma)
        alpha = max(cfg.alpha_min, cfg.alpha_max * remaining)
        out.append(Stage(k, alpha, temperature))
    return out
