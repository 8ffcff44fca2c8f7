"""The family's report: report.json (read by benchmarks and checks), report.md and report.png.

report.json holds exactly: family_id, source, target, references (oracle and σ-reference, synthetic
data only), regime_detector (synthetic only), tiers, baselines (one_shot, direct), classical (the
classical baselines), skill (every tier against the best classical baseline, with intervals) and timing.
The markdown's first table is also what the job prints at the end: every tier, the network baselines,
the classical baselines and the references, each with its difference to the best baseline; then the
plain verdict, the target's skills (direction: flat vs moving, up vs down), the same per regime, and
timing. The plot (`training/plots.py`) shows retention against compression and the learning curves.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from models.manifest import Interval, Manifest, Metrics, TierEntry, Versus
from training import plots
from training.distill import Point

TIER_FIELDS = ("name", "layers", "width", "params", "compression", "alpha", "temperature",
               "parity_max_abs_diff", "latency_us_batch1", "train_seconds", "metrics", "versus_best")
LABELS = {"r2": "R²", "mse": "MSE", "directional_accuracy": "dir. acc.", "balanced_accuracy": "bal. acc.",
          "accuracy": "accuracy", "log_loss": "log loss"}


def tier_row(t: TierEntry, versus: Versus | None) -> dict[str, Any]:
    values = t.model_dump(exclude={"metrics", "per_regime"})
    row = {k: _finite(values[k]) for k in TIER_FIELDS if k in values}
    row["metrics"] = _metrics(t.metrics)
    row["versus_best"] = versus.model_dump() if versus else None
    return row


def _metrics(m: Metrics) -> dict[str, Any]:
    return {k: v for k, v in m.model_dump().items() if v is not None}


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def build(m: Manifest, detector: dict[str, Any] | None, timing: dict[str, float]) -> dict[str, Any]:
    versus = m.skill.overall
    return {
        "family_id": m.family_id,
        "source": m.source,
        "target": m.target.model_dump(),
        "references": {k: {"description": r.description, "metrics": _metrics(r.metrics)}
                       for k, r in m.references.items()},
        "regime_detector": detector,
        "tiers": [tier_row(t, versus.get(t.name)) for t in m.tiers],
        "baselines": {name: tier_row(t, versus.get(name)) for name, t in m.baselines.items()},
        "classical": {name: {"description": c.description, "coefficients": c.coefficients,
                             "fit_seconds": c.fit_seconds, "metrics": _metrics(c.metrics)}
                      for name, c in m.classical.items()},
        "skill": m.skill.model_dump(),
        "timing": timing,
    }


def columns(m: Manifest) -> list[str]:
    """The metric columns of this family's tables: the headline first, then what M0's metrics hold."""
    held = [k for k in LABELS if getattr(m.tiers[0].metrics, k) is not None and k != m.skill.metric]
    return [m.skill.metric, *held]


def table(m: Manifest) -> str:
    """Every tier, the network baselines, the classical baselines and the references, in one table."""
    metrics = columns(m)
    best = m.skill.best_baseline
    head = ["model", "shape", "params", *(LABELS[k] for k in metrics), f"− {best} (95% CI)", "retention",
            "oracle share", "α", "T", "parity", "µs/row", "train s"]
    rows = [head]
    for t in [*m.tiers, *m.baselines.values()]:
        versus = m.skill.overall.get(t.name)
        rows.append([t.name, f"{t.layers}×{t.width}", f"{t.params:,}", *_values(t.metrics, metrics),
                     _ci(versus.difference) if versus else "–", _pct(t.metrics.retention),
                     _pct(t.metrics.oracle_share), _num(t.alpha, 2), _num(t.temperature, 2),
                     f"{t.parity_max_abs_diff:.1e}", f"{t.latency_us_batch1:.0f}", f"{t.train_seconds:.1f}"])
    for c in m.classical.values():
        rows.append([c.name + (" (best)" if c.name == best else ""), "classical", f"{c.coefficients:,}",
                     *_values(c.metrics, metrics), "–", "–", _pct(c.metrics.oracle_share),
                     "–", "–", "–", "–", f"{c.fit_seconds:.1f}"])
    for r in m.references.values():
        rows.append([r.name, "reference", "–", *_values(r.metrics, metrics), "–", "–", "–",
                     "–", "–", "–", "–", "–"])
    return _markdown(rows)


def _values(metrics: Metrics, keys: list[str]) -> list[str]:
    """Each metric as a table cell; MSE in the target's squared units can be tiny, so it gets 3 digits."""
    return [_num(getattr(metrics, k)) if k != "mse" else _sci(getattr(metrics, k)) for k in keys]


def _sci(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.3g}"


def _markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def _num(v: float | None, digits: int = 4) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.1%}"


def _ci(i: Interval) -> str:
    signed = lambda v: "n/a" if v is None else f"{v:+.4f}"  # noqa: E731
    return f"{signed(i.value)} [{signed(i.low)}, {signed(i.high)}]"


def markdown(m: Manifest, report: dict[str, Any]) -> str:
    t, s = m.target, m.skill
    lines = [f"# Family {m.family_id}", "",
             f"Source: {m.source.get('kind')} {m.source.get('symbol', '')} {m.source.get('interval', '')}, "
             f"{m.source.get('rows', 0):,} rows. Target: **{t.name}**, horizon {t.horizon} bar(s): "
             f"{t.description}; predictions in {t.units}"
             + (f"; fitted on the training split: {_params(t.params)}" if t.params else "")
             + f". Test rows: {m.tiers[0].metrics.rows:,}.", ""]
    if report["regime_detector"] is not None:
        lines += [f"Regime detector balanced accuracy on the test split: "
                  f"{report['regime_detector']['balanced_accuracy']:.3f}.", ""]
    best = _num(getattr(m.classical[s.best_baseline].metrics, s.metric))
    lines += [table(m), "",
              f"**Against the classical baselines.** {s.verdict} The best baseline on the test split is "
              f"{s.best_baseline} ({LABELS[s.metric]} {best}); intervals are {s.confidence:.0%} percentile "
              f"intervals from a block bootstrap over the test split ({s.resamples:,} resamples of blocks "
              f"of {s.block_length} rows: {s.block_rule}).", ""]
    if m.references:
        lines += ["References (they read the simulator's truth): " + "; ".join(
            f"{r.name}: {r.description}" for r in m.references.values()) + ".", ""]
    if s.skills:
        lines += _skills(m)
    lines += _per_regime(m)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report["timing"].items())
    return "\n".join([*lines, "", f"Timing: {timing}.", ""])


def _params(params: dict[str, float]) -> str:
    return ", ".join(f"{k} = {v:.4g}" for k, v in params.items())


def _skills(m: Manifest) -> list[str]:
    names = sorted({k for v in m.skill.skills.values() for k in v})
    rows = [["model", *(f"{n.replace('_', ' ')} (bal. acc., 95% CI)" for n in names)]]
    for model, skills in m.skill.skills.items():
        rows.append([model, *(_interval(skills.get(n)) for n in names)])
    return ["The skills inside the classes, scored apart (0.5 is no skill):", "", _markdown(rows), ""]


def _interval(i: Interval | None) -> str:
    if i is None:
        return "–"
    return f"{_num(i.value)} [{_num(i.low)}, {_num(i.high)}]"


def _per_regime(m: Manifest) -> list[str]:
    names = m.regime.names
    metric = m.skill.metric
    rows = [["model", *names]]
    entries: list[tuple[str, dict[str, Metrics]]] = [
        *((t.name, t.per_regime) for t in [*m.tiers, *m.baselines.values()]),
        *((c.name, c.per_regime) for c in m.classical.values()),
        *((r.name, r.per_regime) for r in m.references.values())]
    for name, per_regime in entries:
        rows.append([name, *(_num(getattr(per_regime[r], metric)) if r in per_regime else "–"
                             for r in names)])
    against = [["tier", *names]]
    for tier in [*(t.name for t in m.tiers), *m.baselines]:
        against.append([tier, *(_versus(m.skill.per_regime[r].get(tier)) if r in m.skill.per_regime else "–"
                                for r in names)])
    verdicts = [f"- {r}: {v}" for r, v in m.skill.regime_verdicts.items()]
    return [f"Per regime ({LABELS[metric]}):", "", _markdown(rows), "",
            "Per regime, against that regime's best classical baseline (difference, 95% CI):", "",
            _markdown(against), "", *verdicts]


def _versus(v: Versus | None) -> str:
    return "–" if v is None else f"{_ci(v.difference)} vs {v.baseline}"


def write(m: Manifest, report: dict[str, Any], curves: dict[str, list[Point]], directory: Path) -> list[Path]:
    paths = [directory / "report.json", directory / "report.md", directory / "report.png"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown(m, report))
    plots.family(m, curves, paths[2])
    return paths
