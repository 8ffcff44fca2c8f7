"""bench.hysteresis in its --quick mode: every setting is measured on every stream, the pick obeys the
held-bars limit and flaps less than none, the tables render; and `python -m bench` keeps the sections of
benchmarks whose results are not on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench import hysteresis


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return hysteresis.run(True, tmp_path_factory.mktemp("hysteresis"))


def test_every_setting_is_measured_on_every_stream(quick):
    names = {s["name"] for s in quick["streams"]}
    assert "synthetic market (seed 7)" in names
    assert len(quick["grid"]) == len(hysteresis.QUICK_MARGINS) * len(hysteresis.QUICK_BARS)
    for point in quick["grid"]:
        assert set(point["streams"]) == names
        for m in point["streams"].values():
            assert m["per_1000"] >= 0 and 0.0 <= m["held"] <= 1.0


def test_none_holds_nothing_and_never_changing_holds_most(quick):
    none = next(p for p in quick["grid"] if p["margin"] == 0.0 and p["bars"] == 1)
    frozen = next(p for p in quick["grid"] if p["margin"] is None and p["bars"] is None)
    assert none["change_ratio"] == 1.0 and none["max_held"] == 0.0
    assert frozen["change_ratio"] == 0.0 and frozen["max_held"] > hysteresis.MAX_HELD


def test_the_pick_respects_the_held_limit_and_removes_tier_changes(quick):
    pick = next(p for p in quick["grid"] if (p["margin"], p["bars"]) == (quick["pick"]["margin"],
                                                                         quick["pick"]["bars"]))
    assert pick["max_held"] <= hysteresis.MAX_HELD
    assert pick["change_ratio"] < 1.0


def test_per_hour_follows_the_bar_interval(quick):
    for s in quick["streams"]:
        m = quick["grid"][0]["streams"][s["name"]]
        assert m["per_hour"] == pytest.approx(m["changes"] / s["hours"])


def test_result_is_plain_json_and_the_tables_render(quick):
    assert json.loads(json.dumps(quick, allow_nan=False))["pick"] == quick["pick"]
    text = hysteresis.markdown(quick)
    assert "| none (the detector bar by bar) |" in text and "**(default)**" in text
    assert "tier changes / 1,000 bars" in text and "Pick:" in text


def test_render_keeps_the_section_of_a_benchmark_without_results_here(tmp_path: Path):
    document = "# Benchmarks\n\nheader\n\n## serve\n\nCommand: kept serve text.\n\n## routing\n\nrouting\n"
    rendered = bench_main.render(tmp_path, bench_main.sections(document))
    assert "## serve\n\nCommand: kept serve text.\n" in rendered
    assert "## hysteresis\n\nNo full run recorded yet" in rendered
