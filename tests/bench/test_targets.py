"""bench/targets in its --quick mode: a family per target on the smallest real file (or the synthetic
market), every network and classical baseline scored, M0 against the best baseline with an interval,
the tables rendered, and each family's report kept."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bench import targets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("targets")
    return targets.run(True, out), out


def test_every_quick_target_gets_a_family_scored_against_every_baseline(quick):
    result, out = quick
    assert [f["target"]["name"] for f in result["families"]] == list(targets.QUICK_TARGETS)
    for f in result["families"]:
        assert set(targets.NETWORKS) <= set(f["scores"]) and f["best"] in f["scores"]
        assert all(v is None or math.isfinite(v) for v in f["scores"].values())
        d = f["m0_vs_best"]
        assert d["low"] <= d["value"] <= d["high"] and f["best"] in f["verdict"]
        assert (out / "targets" / f"{f['source']}-{f['target']['name']}.md").is_file()
    direction = result["families"][1]
    assert set(direction["skills"]["M0"]) == {"flat_vs_moving", "up_vs_down"}


def test_markdown_gives_a_table_per_source_with_the_interval_and_the_verdicts(quick):
    result, _ = quick
    text = targets.markdown(result)
    assert text.count("### ") == len(result["sources"]) and "M0 − best baseline" in text
    for f in result["families"]:
        assert f["verdict"] in text
