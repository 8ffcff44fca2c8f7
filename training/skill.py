"""Does any tier beat the classical baselines? Differences to the best baseline, with block-bootstrap CIs.

On the test split, the best baseline is the classical model with the highest headline metric (R², or
balanced accuracy), chosen on the test split itself: the strictest reading, since a tier that beats it
beats every baseline. Each tier's (and each network baseline's) difference to it gets a percentile
interval from one set of block resamples shared by all models (paired); a tier "beats" the baseline
when the whole interval lies above zero. The block length is the longer of the Politis-White choices
for the paired loss difference (best baseline − M0) and for M0's own loss, which carries volatility
clustering. The same per regime, against the best baseline of that regime. For a target with named
skills (direction: flat vs moving, up vs down) each model's balanced accuracy of each skill gets its
interval too, so a volatility skill is not mistaken for a directional one.
"""

from __future__ import annotations

import math

import numpy as np

from market.regime import REGIMES
from market.targets import Target
from models.manifest import Interval, SkillSection, Versus
from training import bootstrap
from training.kinds import Kind

TIERS_FIRST = ("M0", "M1", "M2", "M3")


def compare(kind: Kind, target: Target, y: np.ndarray, regimes: np.ndarray, models: dict[str, np.ndarray],
            baselines: dict[str, np.ndarray], seed: int = 0) -> SkillSection:
    """models and baselines: name → (n, width) test predictions; regimes: (n,) index into REGIMES."""
    metric = kind.headline
    stats = {name: kind.row_stats(target, pred, y) for name, pred in {**models, **baselines}.items()}
    masks = {"all": np.ones(len(y), dtype=bool)} | {r: regimes == i for i, r in enumerate(REGIMES)}
    masks = {name: m for name, m in masks.items() if m.sum() > 1}

    def values(sums: np.ndarray) -> dict[str, np.ndarray]:
        return kind.from_sums(target, sums)

    point = {(name, where): values((s * masks[where][:, None]).sum(axis=0))
             for name, s in stats.items() for where in masks}
    best = _best(baselines, {n: float(point[(n, "all")][metric]) for n in baselines})
    # Blocks long enough for the persistence of both the paired difference and M0's own errors (the
    # latter carries volatility clustering, and the skills' intervals are of levels, not differences).
    m0_loss = kind.loss(models["M0"], y)
    length = max(bootstrap.block_length(kind.loss(baselines[best], y) - m0_loss, minimum=target.horizon),
                 bootstrap.block_length(m0_loss, minimum=target.horizon))
    resampler = bootstrap.Resampler.draw(len(y), length, seed=seed)
    drawn = {(name, where): values(resampler.sums(s * masks[where][:, None]))
             for name, s in stats.items() for where in masks}

    def versus(name: str, where: str, against: str) -> Versus:
        diff = float(point[(name, where)][metric] - point[(against, where)][metric])
        low, high = bootstrap.interval(drawn[(name, where)][metric] - drawn[(against, where)][metric])
        return Versus(baseline=against, difference=_interval(diff, low, high), beats=bool(low > 0))

    overall = {name: versus(name, "all", best) for name in models}
    per_regime: dict[str, dict[str, Versus]] = {}
    for where in masks:
        if where == "all":
            continue
        local = _best(baselines, {n: float(point[(n, where)][metric]) for n in baselines})
        per_regime[where] = {name: versus(name, where, local) for name in models}
    skills = {name: {key[len("skill:"):]: _interval(float(point[(name, "all")][key]),
                                                    *bootstrap.interval(drawn[(name, "all")][key]))
                     for key in point[(name, "all")] if key.startswith("skill:")}
              for name in [*models, *baselines]}
    return SkillSection(
        metric=metric, confidence=bootstrap.CONFIDENCE, resamples=int(resampler.counts.shape[0]),
        block_length=length,
        block_rule="the longer of Politis-White (2004) on the per-row loss of the best baseline minus "
                   f"M0's and on M0's own loss, at least the horizon ({target.horizon}) and "
                   f"n/{bootstrap.MAX_BLOCKS}",
        best_baseline=best, overall=overall, per_regime=per_regime,
        skills={k: v for k, v in skills.items() if v},
        verdict=verdict(overall, metric),
        regime_verdicts={r: verdict(v, metric) for r, v in per_regime.items()})


def verdict(versus: dict[str, Versus], metric: str) -> str:
    """One plain sentence: which tiers beat the best baseline, or that none does."""
    tiers = [t for t in TIERS_FIRST if t in versus]
    baseline = versus[tiers[0]].baseline
    winners = [t for t in tiers if versus[t].beats]
    m0 = versus[tiers[0]].difference
    if winners:
        said = ", ".join(f"{t} ({_signed(versus[t].difference)})" for t in winners)
        return f"{said} beat{'s' if len(winners) == 1 else ''} the best baseline ({baseline}) on {metric}."
    return f"No tier beats the best baseline ({baseline}) on {metric}: M0 − {baseline} = {_signed(m0)}."


def _signed(i: Interval) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:+.4f}"  # noqa: E731
    return f"{fmt(i.value)} [{fmt(i.low)}, {fmt(i.high)}]"


def _best(names: dict[str, np.ndarray], scores: dict[str, float]) -> str:
    finite = {n: float(v) for n, v in scores.items() if np.isfinite(v)}
    return max(finite, key=lambda n: finite[n]) if finite else next(iter(names))


def _interval(value: float, low: float, high: float) -> Interval:
    clean = lambda v: v if math.isfinite(v) else None  # noqa: E731
    return Interval(value=clean(value), low=clean(low), high=clean(high))
