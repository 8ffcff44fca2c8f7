"""The family's report: report.json (read by benchmarks and checks), report.md and report.png.

report.json holds exactly: family_id, source, task, oracle_r2 (synthetic only), regime_detector
(synthetic only), tiers, baselines (one_shot, direct) and timing. The markdown table is also what
the job prints at the end; the plot shows retention against compression for the chain and both
baselines, and every stage's validation curve.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from models.manifest import Manifest, TierEntry
from training.distill import Point

TIER_FIELDS = ("name", "layers", "width", "params", "compression", "r2", "directional_accuracy", "retention",
               "parity_max_abs_diff", "latency_us_batch1", "alpha", "temperature", "train_seconds")


def tier_row(t: TierEntry) -> dict[str, Any]:
    values = {**t.model_dump(exclude={"metrics", "per_regime"}), **t.metrics.model_dump()}
    return {k: _finite(values[k]) for k in TIER_FIELDS}


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def build(m: Manifest, oracle_r2: float | None, detector: dict[str, Any] | None,
          timing: dict[str, float]) -> dict[str, Any]:
    return {
        "family_id": m.family_id,
        "source": m.source,
        "task": m.task,
        "oracle_r2": oracle_r2,
        "regime_detector": detector,
        "tiers": [tier_row(t) for t in m.tiers],
        "baselines": {name: tier_row(t) for name, t in m.baselines.items()},
        "timing": timing,
    }


def table(m: Manifest) -> str:
    """One markdown table: every tier, then the baselines."""
    regression = m.task == "regression"
    head = ["tier", "shape", "params", "compr.", "R²" if regression else "accuracy", "dir. acc.",
            "retention", "oracle share", "α", "T", "parity", "µs/row", "train s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in [*m.tiers, *m.baselines.values()]:
        mt = t.metrics
        cells = [t.name, f"{t.layers}×{t.width}", f"{t.params:,}", f"{t.compression:.1f}×",
                 _num(mt.r2 if regression else mt.accuracy), _num(mt.directional_accuracy),
                 _pct(mt.retention), _pct(mt.oracle_share), _num(t.alpha, 2), _num(t.temperature, 2),
                 f"{t.parity_max_abs_diff:.1e}", f"{t.latency_us_batch1:.0f}", f"{t.train_seconds:.1f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _num(v: float | None, digits: int = 4) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.1%}"


def markdown(m: Manifest, report: dict[str, Any], regime_oracle: dict[str, float] | None = None) -> str:
    lines = [f"# Family {m.family_id}", "",
             f"Source: {m.source.get('kind')} {m.source.get('symbol', '')} {m.source.get('interval', '')}, "
             f"{m.source.get('rows', 0):,} rows; task: {m.task}; test rows: {m.tiers[0].metrics.rows:,}.", ""]
    if report["oracle_r2"] is not None:
        lines += [f"Oracle R² on the test split (true expected return): {report['oracle_r2']:.4f}.", ""]
    if report["regime_detector"] is not None:
        lines += [f"Regime detector balanced accuracy on the test split: "
                  f"{report['regime_detector']['balanced_accuracy']:.3f}.", ""]
    lines += [table(m), "", "Per regime (" + ("R²" if m.task == "regression" else "accuracy") + "):", ""]
    names = m.regime.names
    lines += ["| tier | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for t in [*m.tiers, *m.baselines.values()]:
        cells = [_num(t.per_regime[r].r2 if m.task == "regression" else t.per_regime[r].accuracy)
                 if r in t.per_regime else "–" for r in names]
        lines.append(f"| {t.name} | " + " | ".join(cells) + " |")
    if regime_oracle:
        lines.append("| oracle | " + " | ".join(_num(regime_oracle.get(r)) for r in names) + " |")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report["timing"].items())
    lines += ["", f"Timing: {timing}.", ""]
    return "\n".join(lines)


def plot(m: Manifest, curves: dict[str, list[Point]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    chain = m.tiers
    left.plot([t.compression for t in chain], [t.metrics.retention or 0.0 for t in chain], "o-",
              label="progressive chain")
    for t in chain:
        left.annotate(t.name, (t.compression, t.metrics.retention or 0.0), textcoords="offset points",
                      xytext=(4, 4))
    for (name, t), marker in zip(m.baselines.items(), ("s", "^"), strict=False):
        left.plot([t.compression], [t.metrics.retention or 0.0], marker, markersize=9, label=name)
    left.set(xscale="log", xlabel="compression (× fewer parameters than M0)", ylabel="retention (vs M0)",
             title="Retention against compression")
    left.grid(True, alpha=0.3)
    left.legend()
    for name, curve in curves.items():
        right.plot([p.epoch for p in curve], [p.val_loss for p in curve], label=name)
    right.set(xlabel="epoch", ylabel="validation label loss", title="Learning curves")
    right.grid(True, alpha=0.3)
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(m: Manifest, report: dict[str, Any], curves: dict[str, list[Point]], directory: Path,
          regime_oracle: dict[str, float] | None = None) -> list[Path]:
    paths = [directory / "report.json", directory / "report.md", directory / "report.png"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown(m, report, regime_oracle))
    plot(m, curves, paths[2])
    return paths
