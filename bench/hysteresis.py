"""How much regime hysteresis steadies routing on real candles, and what it holds back.

    python -m bench.hysteresis [--quick] [--out DIR]      (or: python -m bench hysteresis)

Each candle file in ../shared/data/ohlcv, and a synthetic market whose true regimes say whether holding
a regime helps or hurts detection, is built into a dataset exactly as training builds one
(`market.dataset.build`: regime thresholds from `market.regime.calibrate` on the training split's
windows, as a family trained on that file would carry them). The held-out windows (the validation
split, then the test split, each a contiguous stream of bars) go bar by bar through
`market.hysteresis.Hysteresis` at every setting of a grid of margins × bars. Per setting:

  * tier changes per 1,000 bars and per hour of data (the fixed regime → tier map, one tier per
    regime, so a regime change is a tier change);
  * short-lived tiers per 1,000 bars: a tier in force for at most 3 bars before the next change;
  * held: the share of bars on which hysteresis kept a regime the detector alone would have left,
    i.e. where routing and the bar-by-bar detector disagree (the price of steadiness);
  * on the synthetic market, the balanced accuracy of the regime in force against the true regime.

The pick (the defaults in market/hysteresis.py): the setting that removes the most tier changes,
averaged over the real files relative to no hysteresis, while holding at most 10% of bars on every
real file; ties go to fewer bars, then the smaller margin. Without the real files the pick is made on
the synthetic market and says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, cli, table
from market import dataset, hysteresis, targets
from market.bybit import bybit_interval
from market.hysteresis import Hysteresis, HysteresisSettings
from market.regime import Thresholds, balanced_accuracy, confusion_matrix
from market.sources import csv_source, synthetic_source

OHLCV = ROOT / ".." / "shared" / "data" / "ohlcv"
MAX_HELD = 0.10
SHORT_BARS = 3
OFF = None  # a rule switched off in the results: margin ∞ or bars ∞
MARGINS: tuple[float | None, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, OFF)
BARS: tuple[int | None, ...] = (1, 2, 3, 4, 6, 8, 12, 24, OFF)
QUICK_MARGINS: tuple[float | None, ...] = (0.0, 0.05, 0.1, OFF)
QUICK_BARS: tuple[int | None, ...] = (1, 3, 12, OFF)
NEVER = 2**31  # bars that are never reached: the persistence rule off


@dataclass(frozen=True)
class Stream:
    """One source's held-out windows, as contiguous runs of (n, 5) signals."""

    name: str
    interval: str
    runs: list[np.ndarray]
    thresholds: Thresholds
    truth: list[np.ndarray] | None  # true regime per bar on the synthetic market

    @property
    def bars(self) -> int:
        return sum(len(r) for r in self.runs)


def run(quick: bool, out: Path, ohlcv: Path = OHLCV) -> dict[str, Any]:
    files = sorted(ohlcv.glob("*.csv")) if ohlcv.is_dir() else []
    streams = [stream(csv_source(f), f.stem) for f in files]
    streams.append(stream(synthetic_source(20_000 if quick else 200_000, 7), "synthetic market (seed 7)"))
    margins, bars = (QUICK_MARGINS, QUICK_BARS) if quick else (MARGINS, BARS)
    grid: list[dict[str, Any]] = [
        {"margin": m, "bars": b, "streams": {s.name: measure(s, m, b) for s in streams}}
        for m, b in itertools.product(margins, bars)]
    real = [s.name for s in streams if s.truth is None]
    judged = real or [streams[-1].name]
    for point in grid:
        point["change_ratio"] = float(np.mean([point["streams"][n]["changes"] / max(
            grid[0]["streams"][n]["changes"], 1) for n in judged]))
        point["max_held"] = max(point["streams"][n]["held"] for n in judged)
    eligible = [p for p in grid if p["max_held"] <= MAX_HELD]
    pick = min(eligible, key=lambda p: (round(p["change_ratio"], 4), _order(p["bars"]), _order(p["margin"])))
    return {
        "streams": [{"name": s.name, "interval": s.interval, "bars": s.bars, "hours": hours(s),
                     "thresholds": s.thresholds.to_dict()} for s in streams],
        "grid": grid, "judged_on": judged, "real_skipped": "" if real else f"no CSV files in {ohlcv}",
        "pick": {"margin": pick["margin"], "bars": pick["bars"]}, "max_held": MAX_HELD,
        "defaults": {"margin": hysteresis.DEFAULT_MARGIN, "bars": hysteresis.DEFAULT_BARS},
    }


def stream(source: dataset.Source, name: str) -> Stream:
    ds = dataset.build(source, targets.get("return"))  # any target: only the windows' signals are read
    splits = (ds.val, ds.test)
    truth = [s.true_regime for s in splits if s.true_regime is not None] or None
    return Stream(name, source.interval, [s.signals for s in splits], ds.thresholds, truth)


def measure(s: Stream, margin: float | None, bars: int | None) -> dict[str, float]:
    settings = HysteresisSettings(np.inf if margin is OFF else margin, NEVER if bars is OFF else bars)
    changes = short = held = 0
    regimes = []
    for signals in s.runs:
        regime, _, was_held = Hysteresis(s.thresholds, settings).run(signals)
        changes += int(np.count_nonzero(np.diff(regime)))
        short += int(np.count_nonzero(run_lengths(regime)[1:-1] <= SHORT_BARS))
        held += int(was_held.sum())
        regimes.append(regime)
    result = {"changes": changes, "per_1000": 1000 * changes / s.bars, "per_hour": changes / hours(s),
              "short_per_1000": 1000 * short / s.bars, "held": held / s.bars}
    if s.truth is not None:
        matrix = confusion_matrix(np.concatenate(s.truth), np.concatenate(regimes))
        result["accuracy"] = balanced_accuracy(matrix)
    return result


def run_lengths(regime: np.ndarray) -> np.ndarray:
    """Bars each regime stayed in force, in order (the first and last runs are cut by the stream)."""
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(regime)) + 1, [len(regime)]])
    return np.diff(bounds)


def hours(s: Stream) -> float:
    code = bybit_interval(s.interval)
    minutes = {"D": 1440, "W": 10080, "M": 43830}.get(code) or int(code)
    return s.bars * minutes / 60


def _order(value: float | None) -> float:
    return np.inf if value is OFF else float(value)


def label(margin: float | None, bars: int | None) -> str:
    if margin == 0 or bars == 1:
        return "none (the detector bar by bar)"
    rules = ([] if margin is OFF else [f"margin {margin:g}"]) + ([] if bars is OFF else [f"{bars} bars"])
    return " or ".join(rules) if rules else "never changes"


def markdown(result: dict[str, Any]) -> str:
    pick = result["pick"]
    shown = _shown(result, pick)
    parts = []
    for s in result["streams"]:
        synthetic = any("accuracy" in p["streams"][s["name"]] for p in shown)
        headers = ["hysteresis", "tier changes / 1,000 bars", "per hour", f"short-lived (≤{SHORT_BARS} bars) "
                   "/ 1,000", "held"] + (["balanced accuracy vs truth"] if synthetic else [])
        rows = []
        for p in shown:
            m = p["streams"][s["name"]]
            name = label(p["margin"], p["bars"]) + (" **(default)**" if p is _find(result, pick) else "")
            rows.append([name, m["per_1000"], m["per_hour"], m["short_per_1000"], f"{m['held']:.1%}"]
                        + ([m["accuracy"]] if synthetic else []))
        parts.append(f"**{s['name']}** ({s['interval']} bars; {s['bars']:,} held-out bars, "
                     f"{s['hours']:,.0f} hours)\n\n{table(headers, rows)}")
    parts.append(_grid_table(result))
    parts.append(_reading(result))
    return "\n\n".join(parts)


def _find(result: dict[str, Any], setting: dict[str, Any]) -> dict[str, Any]:
    key = (setting["margin"], setting["bars"])
    return next(p for p in result["grid"] if (p["margin"], p["bars"]) == key)


def _shown(result: dict[str, Any], pick: dict[str, Any]) -> list[dict[str, Any]]:
    wanted = [(0.0, 1), (pick["margin"], pick["bars"]), (0.05, OFF), (0.1, OFF), (0.2, OFF), (OFF, 3),
              (OFF, 12), (0.1, 3), (0.1, 12)]
    points, seen = [], set()
    for m, b in wanted:
        match = [p for p in result["grid"] if p["margin"] == m and p["bars"] == b and (m, b) not in seen]
        if match:
            seen.add((m, b))
            points.append(match[0])
    return points


def _grid_table(result: dict[str, Any]) -> str:
    margins = list(dict.fromkeys(p["margin"] for p in result["grid"]))
    bars = list(dict.fromkeys(p["bars"] for p in result["grid"]))
    cells = {(p["margin"], p["bars"]): f"{p['change_ratio']:.2f} / {p['max_held']:.1%}"
             for p in result["grid"]}
    rows = [["∞" if m is OFF else f"{m:g}"] + [cells[(m, b)] for b in bars] for m in margins]
    headers = ["margin \\ bars"] + ["∞" if b is OFF else str(b) for b in bars]
    on = ", ".join(result["judged_on"])
    return (f"Every setting: tier changes relative to none (mean over {on}) / the most bars held on any "
            f"of them.\n\n{table(headers, rows)}")


def _reading(result: dict[str, Any]) -> str:
    pick, defaults = result["pick"], result["defaults"]
    p = _find(result, pick)
    text = [f"Pick: {label(pick['margin'], pick['bars'])}: {1 - p['change_ratio']:.0%} fewer tier changes "
            f"than none, holding at most {p['max_held']:.1%} of bars (limit {result['max_held']:.0%})."]
    if (defaults["margin"], defaults["bars"]) == (pick["margin"], pick["bars"]):
        text.append("market/hysteresis.py's defaults are this pick.")
    else:
        text.append(f"market/hysteresis.py's defaults (margin {defaults['margin']:g}, "
                    f"{defaults['bars']} bars) differ from this run's pick.")
    if result["real_skipped"]:
        text.append(f"Real files skipped ({result['real_skipped']}); judged on the synthetic market only.")
    return " ".join(text)


def main(argv: Sequence[str] | None = None) -> None:
    cli("hysteresis", run, markdown, argv)


if __name__ == "__main__":
    main()
