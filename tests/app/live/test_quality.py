"""Realised quality of a followed symbol: a real candle file replayed through the real server is scored,
per routed tier and regime, exactly as an offline computation over the same bars scores it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.decisions import DECISION, OUTCOME
from app.registry import load_family
from app.settings import Settings
from cli import main
from market import scores
from market.csvfile import read_candles
from market.features import compute, sliding_windows
from market.hysteresis import Hysteresis, HysteresisSettings
from market.regime import REGIMES
from tests.app.live.conftest import run, serving, settings, symbol_state

ETH = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ohlcv" / \
    "binance_ETHUSDT_5m_20241201_20241231_takerbuy.csv"
HISTORY, LIVE = 500, 240  # bars the replay holds as history, bars it then hands out


@pytest.fixture(scope="module")
def eth_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first HISTORY + LIVE bars of the real ETHUSDT 5m file (kept outside the repository)."""
    if not ETH.is_file():
        pytest.skip(f"the real candle file {ETH.name} is not in ../shared/data/ohlcv")
    path = tmp_path_factory.mktemp("eth") / "ETHUSDT_5m.csv"
    lines = ETH.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1 + HISTORY + LIVE]))
    return path


def offline(store: Path, path: Path, s: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    """(routed tier, regime) → outcomes and each tier's scores, computed from the file alone: the family's
    features of every window, the hysteresis run over them, every tier on every live bar, the target."""
    family = load_family(store)
    candles = read_candles(path).candles
    need = family.manifest.features.window
    ends = np.arange(need - 1, len(candles))
    f = compute(sliding_windows(candles, ends), use_book=family.manifest.features.use_book)
    regime, _, _ = Hysteresis(family.thresholds, HysteresisSettings(s.hysteresis_margin,
                                                                    s.hysteresis_bars)).run(f.signals)
    target = family.target
    live = (ends >= HISTORY) & (ends + target.horizon < len(candles))  # handed out, and realised
    y = target.y(candles, ends[live])
    outputs = {name: family.run(name, f.x[live]) for name in family.available}
    routed = np.array([family.manifest.regime.tier_map[REGIMES[k]] for k in regime[live]])
    regimes = np.array([REGIMES[k] for k in regime[live]])
    out = {}
    for key in sorted(set(zip(routed.tolist(), regimes.tolist(), strict=True))):
        rows = (routed == key[0]) & (regimes == key[1])
        out[key] = {"outcomes": int(rows.sum()),
                    "scores": {name: {"rows": int(rows.sum()), **scores.score(target, out_[rows], y[rows])}
                               for name, out_ in outputs.items()}}
    return out


@pytest.mark.slow
def test_realised_quality_of_a_replayed_real_file_equals_the_offline_computation(
        quick_store: Path, eth_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    log = tmp_path / "decisions.jsonl"
    s = settings(quick_store, feeds=(f"ETH=replay:{eth_slice}:max",), shadow_rate=0.0, decision_log=log)
    expected = offline(quick_store, eth_slice, s)
    realised_bars = sum(v["outcomes"] for v in expected.values())

    async def scenario() -> tuple[dict[str, Any], str]:
        async with serving(s) as client:
            await symbol_state(client, "ETH", lambda x: x["state"]["status"] == "stopped", seconds=60)
            async with asyncio.timeout(20):
                while True:
                    tiers = (await client.get("/tiers")).json()
                    seen = sum(r["outcomes"] for t in tiers["tiers"] for r in t["live"]["realised"].values())
                    if seen >= realised_bars:
                        break
                    await asyncio.sleep(0.05)
            return tiers, (await client.get("/metrics")).text

    tiers, metrics = run(scenario(), seconds=90)
    got = {(t["name"], regime): stats
           for t in tiers["tiers"] for regime, stats in t["live"]["realised"].items()}
    assert set(got) == set(expected)
    got_tiers = [t["name"] for t in tiers["tiers"]]
    assert sum(v["outcomes"] for v in got.values()) == realised_bars == LIVE - tiers["target"]["horizon"]
    for key, want in expected.items():
        assert got[key]["outcomes"] == want["outcomes"], key
        assert set(got[key]["scores"]) == set(want["scores"]), "every tier is scored on the routed bars"
        for scored, values in want["scores"].items():
            for metric, value in values.items():
                seen = got[key]["scores"][scored][metric]
                if value is None:  # undefined (R² of a single bar): undefined live too
                    assert seen is None, (key, scored, metric)
                else:
                    assert seen == pytest.approx(value, rel=1e-5, abs=1e-9), (key, scored, metric)
    headline = scores.headline(load_family(quick_store).target)
    exported = {(x.labels["tier"], x.labels["regime"], x.labels["scored_tier"]): x.value
                for fam in text_string_to_metric_families(metrics) for x in fam.samples
                if x.name == "tiered_live_quality" and x.labels["metric"] == headline}
    for (tier, regime), want in expected.items():
        for scored, values in want["scores"].items():
            if values.get(headline) is not None:
                assert exported[(tier, regime, scored)] == pytest.approx(values[headline], rel=1e-5, abs=1e-9)

    # The decision log holds every bar's decision, and its outcome once realised; the audit agrees.
    events = [json.loads(line) for line in log.read_bytes().splitlines()]
    decisions = {e["id"]: e["data"] for e in events if e["type"] == DECISION}
    outcomes = [e for e in events if e["type"] == OUTCOME]
    assert len(decisions) == LIVE and len(outcomes) == realised_bars
    assert all(e["subject"] in decisions and decisions[e["subject"]]["symbol"] == "ETH" for e in outcomes)
    assert all(set(decisions[e["subject"]]["shadow"]) | {decisions[e["subject"]]["tier"]} == set(got_tiers)
               for e in outcomes), "a followed bar runs on every tier"
    with pytest.raises(SystemExit) as exit_info:
        main(["replay-log", str(log), "--models", str(quick_store)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and f"{LIVE} decisions, {realised_bars} outcomes (0 of" in out, out
