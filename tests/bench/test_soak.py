"""bench.soak in its --quick mode over the suite's quick family: the paced load against the real server
fails no request, the server's memory is read at the start and end of it and does not grow by 10%, and
the table renders with its verdicts.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from bench import soak

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick(quick_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return soak.run(True, tmp_path_factory.mktemp("soak"), models=quick_store)


def test_quick_soak_fails_no_request(quick):
    assert quick["errors"] == 0
    assert quick["requests"] > 0 and quick["achieved_rps"] > 0


def test_quick_soak_paces_below_the_measured_capacity(quick):
    assert 0 < quick["target_rps"] == pytest.approx(soak.SHARE * quick["capacity"]["rps"])
    assert quick["capacity"]["errors"] == 0


def test_quick_soak_latencies_are_finite_and_ordered(quick):
    assert 0 < quick["p50_ms"] <= quick["p99_ms"] <= quick["max_ms"]
    assert all(math.isfinite(quick[k]) for k in ("p50_ms", "p99_ms", "max_ms"))


def test_quick_soak_reads_the_servers_memory_which_does_not_grow(quick):
    rss = quick["rss_mib"]
    assert rss["ready"] > 0 and 0 < rss["start"] <= rss["peak"] and rss["end"] <= rss["peak"]
    assert len(quick["rss_samples_mib"]) >= quick["plan"]["soak_seconds"] // 2
    assert quick["rss_growth"] < soak.TARGET_GROWTH


def test_quick_soak_result_is_plain_json_and_the_table_renders(quick):
    assert json.loads(json.dumps(quick))["errors"] == 0
    text = soak.markdown(quick)
    for row in ("capacity (closed loop", "paced at 80%", "achieved", "errors", "server VmRSS"):
        assert row in text, row
    assert "target 0: met" in text


def test_the_server_pid_is_found_only_among_our_children():
    with pytest.raises(soak.server.ServerFailed, match="no child process"):
        soak.server_pid("http://127.0.0.1:9")
    assert soak.rss_mib(os.getpid()) > 0


@pytest.fixture(scope="module")
def two_workers(quick_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return soak.run(True, tmp_path_factory.mktemp("soak2"), models=quick_store, workers=2)


def test_quick_soak_with_two_workers_fails_no_request_and_its_memory_does_not_grow(two_workers, quick):
    assert two_workers["workers"] == 2
    assert two_workers["errors"] == 0 and two_workers["capacity"]["errors"] == 0
    assert two_workers["rss_growth"] < soak.TARGET_GROWTH
    # The memory read is the supervisor's and every worker's: one process more than with one worker.
    assert two_workers["server_processes"] == quick["server_processes"] + 1
    assert two_workers["rss_mib"]["ready"] > quick["rss_mib"]["ready"]
    assert "soak of POST /predict, 2 workers" in soak.markdown(two_workers)
