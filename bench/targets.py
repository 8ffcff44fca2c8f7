"""What a family of each target achieves on real candles, against the classical baselines a quant
checks first.

    python -m bench.targets [--quick]

For every CSV file in ../shared/data/ohlcv/ and every target (`market.targets`, each at its default
horizon), `tiered train --source csv:FILE --target NAME` builds a family (the `candles.json` budgets)
into a temporary store; the tables come from its manifest: the test-split headline metric (R², or
balanced accuracy for direction) of M0..M3, one-shot, direct and every classical baseline, M0 − the
best baseline with its block-bootstrap interval, and the job's verdict, overall and per regime (the
detector's regimes: real data has no true ones). Each family's report.md is kept in the results
directory. --quick: the smallest file (the synthetic market when there is none), two targets, --quick
families.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, cli, table
from bench.family import Store, train
from market import targets

OHLCV = ROOT / ".." / "shared" / "data" / "ohlcv"
QUICK_TARGETS = ("volatility", "direction")
NETWORKS = ("M0", "M1", "M2", "M3", "one_shot", "direct")


def run(quick: bool, out: Path, ohlcv: Path = OHLCV) -> dict[str, Any]:
    files = sorted(ohlcv.glob("*.csv"), key=lambda p: p.stat().st_size) if ohlcv.is_dir() else []
    sources = [f"csv:{f}" for f in (files[:1] if quick else files)] or ["synthetic"]
    names = QUICK_TARGETS if quick else targets.names()
    reports = out / "targets"
    reports.mkdir(parents=True, exist_ok=True)
    families = [family(source, name, quick, reports) for source in sources for name in names]
    return {"families": families, "sources": sources, "targets": list(names),
            "skipped": "" if files else f"no real candles in {ohlcv}: the synthetic market instead"}


def family(source: str, target: str, quick: bool, reports: Path) -> dict[str, Any]:
    """Train one family and keep what the tables need from its manifest, and its report.md."""
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        seconds = train(Path(tmp), quick, source, ["--target", target])
        store = Store.read(Path(tmp), seconds)
        shutil.copyfile(store.directory / "report.md", reports / f"{_label(source)}-{target}.md")
    m, s = store.manifest, store.manifest.skill
    entries = {**{t.name: t for t in m.tiers}, **m.baselines}
    scores = {name: getattr(e.metrics, s.metric) for name, e in entries.items()}
    scores |= {name: getattr(c.metrics, s.metric) for name, c in m.classical.items()}
    m0 = s.overall["M0"].difference
    print(f"bench.targets: {_label(source)} {target}: {s.verdict}", file=sys.stderr)
    return {"source": _label(source), "target": m.target.model_dump(), "family_id": m.family_id,
            "rows": m.tiers[0].metrics.rows, "metric": s.metric, "scores": scores, "best": s.best_baseline,
            "m0_vs_best": m0.model_dump(), "beats": {n: v.beats for n, v in s.overall.items()},
            "verdict": s.verdict, "regime_verdicts": s.regime_verdicts, "block_length": s.block_length,
            "skills": {n: {k: i.model_dump() for k, i in v.items()} for n, v in s.skills.items()},
            "train_seconds": seconds}


def _label(source: str) -> str:
    return Path(source.removeprefix("csv:")).stem if source.startswith("csv:") else source


def markdown(result: dict[str, Any]) -> str:
    parts = []
    for source in dict.fromkeys(f["source"] for f in result["families"]):
        fams = [f for f in result["families"] if f["source"] == source]
        head = ["model", *(f"{f['target']['name']} (h={f['target']['horizon']}, {_metric(f)})" for f in fams)]
        names = list(dict.fromkeys(n for f in fams for n in f["scores"]))
        rows = [[n, *(_num(f["scores"].get(n)) + (" *" if n == f["best"] else "") for f in fams)]
                for n in names]
        rows.append(["**M0 − best baseline** [95% CI]", *(_ci(f["m0_vs_best"]) for f in fams)])
        rows.append(["test rows / block length", *(f"{f['rows']:,} / {f['block_length']}" for f in fams)])
        parts += [f"### {source}", "", table(head, rows), "",
                  "`*` the best classical baseline on the test split. Verdicts:", "",
                  *(f"- {f['target']['name']}: {f['verdict']}" for f in fams), "",
                  *_skills(fams)]
    if result["skipped"]:
        parts.append(f"Note: {result['skipped']}.")
    return "\n".join(parts)


def _skills(fams: list[dict[str, Any]]) -> list[str]:
    lines = []
    for f in fams:
        for model in ("M0", f["best"]):
            skills = f["skills"].get(model, {})
            if skills:
                said = "; ".join(f"{k.replace('_', ' ')} {_num(v['value'])} "
                                 f"[{_num(v['low'])}, {_num(v['high'])}]" for k, v in skills.items())
                lines.append(f"- {f['target']['name']}, {model}: balanced accuracy of each skill: {said}.")
    return [*lines, ""] if lines else []


def _metric(f: dict[str, Any]) -> str:
    return {"r2": "R²", "balanced_accuracy": "bal. acc."}.get(f["metric"], f["metric"])


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"


def _ci(d: dict[str, float | None]) -> str:
    signed = lambda v: "n/a" if v is None else f"{v:+.4f}"  # noqa: E731
    return f"{signed(d['value'])} [{signed(d['low'])}, {signed(d['high'])}]"


if __name__ == "__main__":
    cli("targets", run, markdown)
