"""`tiered replay-log FILE...`: recompute the decisions a decision log recorded, and report mismatches.

    tiered replay-log decisions.jsonl decisions.jsonl.1 [--models DIR] [--json]

For every `org.tiered.decision` line (`app/decisions.py`) the family it names is loaded from the store
(any family still there, not only CURRENT) and, from what the line recorded, the audit recomputes:

  * the tier file: its sha256 is the manifest's;
  * the regime: the detector's regime for the recorded signals under the family's thresholds (when the
    detector chose it; a followed symbol's hysteresis chose with the bars before, `regime_from` caller),
    and the signals are the ones the tier read (the last features);
  * the route: an override goes to its tier, a regime to its tier in the map (routes by `budget` and
    `fallback` depended on latencies and availability at the time; the tier is only checked to exist);
  * the output: the tier run again on the recorded features, and every recorded shadow tier's, within
    `ATOL` + `RTOL`·|value| (onnxruntime may differ in the last bits between batch sizes); the
    prediction is the output read as the target reads it (the value, or the likeliest class).
`org.tiered.outcome` lines must complete a decision of the log (one rotated away is counted, not
flagged). The exit code is 0 when every decision agrees, 1 when any does not, 2 when nothing could be
read. Lines that are not CloudEvents of the log are mismatches too: a log is audited whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.decisions import DECISION, OUTCOME, SPECVERSION
from app.errors import FamilyRefused
from app.registry import Family, load_family
from market.features import SIGNAL_NAMES
from market.regime import REGIMES, detect

ATOL, RTOL = 1e-6, 1e-4


@dataclass(frozen=True)
class Mismatch:
    where: str  # FILE:LINE
    event_id: str | None
    field: str
    logged: Any
    recomputed: Any

    def __str__(self) -> str:
        return (f"{self.where}: {self.event_id or '?'}: {self.field}: logged {self.logged!r}, recomputed "
                f"{self.recomputed!r}")


@dataclass
class Report:
    decisions: int = 0
    outcomes: int = 0
    orphan_outcomes: int = 0  # outcomes whose decision is not in the files given
    routes_unchecked: int = 0  # budget and fallback routes
    max_output_diff: float = 0.0
    mismatches: list[Mismatch] = field(default_factory=list)


@dataclass
class _Line:
    where: str
    id: str
    data: dict[str, Any]


def audit(paths: list[Path], store: Path) -> Report:
    report = Report()
    decisions: list[_Line] = []
    outcomes: list[_Line] = []
    for path in paths:
        for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
            line = _event(f"{path}:{number}", raw, report)
            if line is not None:
                (decisions if line.data.pop("__type") == DECISION else outcomes).append(line)
    families: dict[str, Family | None] = {}
    runs: dict[tuple[str, str], list[tuple[_Line, str]]] = defaultdict(list)  # (family, tier) → outputs
    for line in decisions:
        report.decisions += 1
        family = _family(line, store, families, report)
        if family is not None:
            _check_decision(line, family, report)
            for tier in [line.data["tier"], *(line.data.get("shadow") or {})]:
                if tier in family.tiers and family.tiers[tier].available:
                    runs[(family.family_id, tier)].append((line, tier))
    for (family_id, tier), lines in runs.items():
        _check_outputs(families[family_id], tier, lines, report)
    known = {line.id for line in decisions}
    for line in outcomes:
        report.outcomes += 1
        if line.data.get("decision") not in known:
            report.orphan_outcomes += 1
    return report


def _event(where: str, raw: bytes, report: Report) -> _Line | None:
    try:
        e = json.loads(raw)
        ok = (isinstance(e, dict) and e.get("specversion") == SPECVERSION
              and e.get("type") in (DECISION, OUTCOME) and isinstance(e.get("id"), str)
              and isinstance(e.get("data"), dict))
    except ValueError:
        ok = False
    if not ok:
        report.mismatches.append(Mismatch(where, None, "line", raw[:80].decode(errors="replace"),
                                          "a CloudEvent of type org.tiered.decision or org.tiered.outcome"))
        return None
    return _Line(where, e["id"], {**e["data"], "__type": e["type"]})


def _family(line: _Line, store: Path, families: dict[str, Family | None], report: Report) -> Family | None:
    family_id = str(line.data.get("family_id"))
    if family_id not in families:
        try:
            families[family_id] = load_family(store, family_id=family_id)
        except FamilyRefused as e:
            families[family_id] = None
            report.mismatches.append(Mismatch(line.where, line.id, "family_id", family_id, e.message))
            return None
    return families[family_id]


def _check_decision(line: _Line, family: Family, report: Report) -> None:
    d, m = line.data, family.manifest

    def differ(name: str, logged: Any, recomputed: Any) -> None:
        if logged != recomputed:
            report.mismatches.append(Mismatch(line.where, line.id, name, logged, recomputed))

    tier, regime, reason = d.get("tier"), d.get("regime"), d.get("reason")
    if tier not in family.tiers:
        differ("tier", tier, f"one of {list(family.tiers)}")
        return
    differ("tier_sha256", d.get("tier_sha256"), family.tiers[tier].entry.sha256)
    signals = np.array([d["signals"][name] for name in SIGNAL_NAMES], dtype=np.float64)
    features = np.asarray(d["features"], dtype=np.float32)
    differ("signals", features[-len(SIGNAL_NAMES):].tolist(), signals.astype(np.float32).tolist())
    if d.get("regime_from") == "detector":
        differ("regime", regime, REGIMES[int(detect(signals[None, :], family.thresholds)[0])])
    if reason == "override":
        differ("tier", tier, d.get("override"))
    elif reason == "regime":
        differ("tier", tier, m.regime.tier_map.get(str(regime)))
    else:
        report.routes_unchecked += 1
    output = np.asarray(d["output"], dtype=np.float64)
    classes = m.target.classes
    expected = ({"label": classes[int(np.argmax(output))], "probabilities": dict(zip(classes, output.tolist(),
                                                                                   strict=True))}
                if classes else float(output[0]))
    differ("prediction", d.get("prediction"), expected)


def _check_outputs(family: Family | None, tier: str, lines: list[tuple[_Line, str]], report: Report) -> None:
    assert family is not None
    x = np.array([line.data["features"] for line, _ in lines], dtype=np.float32)
    y = family.run(tier, x).astype(np.float64)
    for (line, _), again in zip(lines, y, strict=True):
        logged = line.data["output"] if tier == line.data["tier"] else line.data["shadow"][tier]
        logged = np.asarray(logged, dtype=np.float64)
        diff = float(np.max(np.abs(logged - again))) if logged.shape == again.shape else float("inf")
        report.max_output_diff = max(report.max_output_diff, diff)
        if not diff <= ATOL + RTOL * float(np.max(np.abs(again))):
            field_name = "output" if tier == line.data["tier"] else f"shadow.{tier}"
            report.mismatches.append(Mismatch(line.where, line.id, field_name, logged.tolist(),
                                              again.tolist()))


# -- the command ------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        print(f"tiered replay-log: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    report = audit(args.files, args.models)
    if args.json:
        body = {**report.__dict__, "mismatches": [m.__dict__ for m in report.mismatches]}
        print(json.dumps(body, indent=2, default=str))
    else:
        print(f"{report.decisions} decisions, {report.outcomes} outcomes ({report.orphan_outcomes} of "
              f"decisions not in these files), {report.routes_unchecked} budget or fallback routes not "
              "recomputable; "
              f"largest output difference {report.max_output_diff:.3g}")
        for m in report.mismatches:
            print(f"MISMATCH {m}")
        print("no mismatch" if not report.mismatches else f"{len(report.mismatches)} mismatches")
    if report.decisions == 0 and report.outcomes == 0 and report.mismatches:
        return 2
    return 1 if report.mismatches else 0
