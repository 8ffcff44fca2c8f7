"""Metrics under several workers, against the real server (`tiered serve` with TIERED_WORKERS=2): every
scrape sums both workers whichever answers it, counters never go backwards, and a worker killed by the
OS keeps its counts in the sum while its per-worker gauges go (app/multiproc.py)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

PREDICTIONS, SCRAPES = 30, 12
WORKER = re.compile(r'^tiered_family_info\{family_id="[^"]+",pid="(\d+)"\} 1\.0$', re.M)


@pytest.fixture(scope="module")
def server(quick_store: Path, serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("workers") / "server.log"
    with serve(quick_store, log, TIERED_WORKERS="2") as s:
        yield s


def predictions_total(text: str) -> float:
    return sum(float(v) for v in re.findall(r"^tiered_predictions_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def scrape(url: str) -> str:
    # A new connection each time: the kernel hands it to either worker.
    response = httpx.get(f"{url}/metrics", timeout=10.0)
    assert response.status_code == 200
    return response.text


def workers(url: str) -> set[int]:
    return {int(pid) for pid in WORKER.findall(scrape(url))}


def wait_for_workers(url: str, count: int, gone: int | None = None, seconds: float = 60.0) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        live = workers(url)
        if len(live) == count and gone not in live:
            return live
        time.sleep(0.2)
    raise AssertionError(f"not {count} live workers without {gone} after {seconds:.0f} s: {workers(url)}")


def test_every_scrape_sums_both_workers_and_never_goes_backwards(server, batch_body):
    live = wait_for_workers(server.url, 2)
    for k in range(PREDICTIONS):
        r = httpx.post(f"{server.url}/predict", json=batch_body["items"][k % len(batch_body["items"])],
                       timeout=10.0)
        assert r.status_code == 200, r.text
    totals = [predictions_total(scrape(server.url)) for _ in range(SCRAPES)]
    assert totals == [PREDICTIONS] * SCRAPES, totals
    assert workers(server.url) == live

    # A worker killed by the OS: its counts stay in the sum, its gauges go, its replacement joins.
    victim = min(live)
    os.kill(victim, signal.SIGKILL)
    wait_for_workers(server.url, 2, gone=victim)
    after = [predictions_total(scrape(server.url)) for _ in range(SCRAPES)]
    assert after == [PREDICTIONS] * SCRAPES, after
    r = httpx.post(f"{server.url}/predict", json=batch_body["items"][0], timeout=10.0)
    assert r.status_code == 200
    assert predictions_total(scrape(server.url)) == PREDICTIONS + 1


def test_tiers_reports_requests_of_every_worker(server):
    tiers = httpx.get(f"{server.url}/tiers", timeout=10.0).json()["tiers"]
    assert sum(t["live"]["requests"] for t in tiers) == predictions_total(scrape(server.url))
