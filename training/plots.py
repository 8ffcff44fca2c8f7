"""The family's plot (report.png): retention against compression for the chain and both network
baselines, and every stage's validation curve."""

from __future__ import annotations

from pathlib import Path

from models.manifest import Manifest
from training.distill import Point


def family(m: Manifest, curves: dict[str, list[Point]], path: Path) -> None:
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
    left.set(xscale="log", xlabel="compression (× fewer parameters than M0)",
             ylabel="retention (share of M0's skill)",
             title=f"{m.target.name}: retention against compression")
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
