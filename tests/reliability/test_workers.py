"""Several workers against the real server (`tiered serve` with TIERED_WORKERS=2), which must all serve
one family (app/supervisor.py):

  * every scrape sums both workers whichever answers it, counters never go backwards, and a worker
    killed by the OS keeps its counts in the sum while its per-worker gauges go (app/multiproc.py);
  * a reload under load reaches both workers and answers only once both serve the new family; a family
    the workers refuse leaves both on the old one;
  * a worker killed by the OS while CURRENT points elsewhere comes back on its sibling's family;
  * a worker that cannot come back leaves the other one serving, and returns once its family loads.

Which worker serves a request is the kernel's choice; `tiered_family_info{pid}` in /metrics shows every
worker's family whichever answers the scrape, so each check reads both the answers and the gauges.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.store import MANIFEST, set_current
from tests.conftest import copy_store
from tests.reliability.conftest import copy_family

pytestmark = pytest.mark.slow

WORKERS = 2
CONSECUTIVE = 40  # requests, each on a new connection, that must all name one family
PREDICTIONS, SCRAPES = 30, 12
WORKER = re.compile(r'^tiered_family_info\{family_id="([^"]+)",pid="(\d+)"\} 1\.0$', re.M)


@pytest.fixture(scope="module")
def store(quick_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the quick store, whose CURRENT the tests move."""
    store = tmp_path_factory.mktemp("workers-store")
    copy_store(quick_store, store)
    return store


@pytest.fixture(scope="module")
def server(store: Path, serve: Any, tmp_path_factory: pytest.TempPathFactory,
           admin_token: str) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("workers") / "server.log"
    with serve(store, log, TIERED_WORKERS=str(WORKERS), TIERED_ADMIN_TOKEN=admin_token) as s:
        yield s


def predictions_total(text: str) -> float:
    return sum(float(v) for v in re.findall(r"^tiered_predictions_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def scrape(url: str) -> str:
    # A new connection each time: the kernel hands it to either worker.
    response = httpx.get(f"{url}/metrics", timeout=10.0)
    assert response.status_code == 200
    return response.text


def workers(url: str) -> dict[int, str]:
    """Every live worker's pid and the family it serves."""
    return {int(pid): family for family, pid in WORKER.findall(scrape(url))}


def wait_for_workers(url: str, count: int, gone: int | None = None, seconds: float = 60.0) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        live = workers(url)
        if len(live) == count and gone not in live:
            return live
        time.sleep(0.2)
    raise AssertionError(f"not {count} live workers without {gone} after {seconds:.0f} s: {workers(url)}")


def families_answering(url: str, body: dict[str, Any], n: int = CONSECUTIVE) -> list[str]:
    """The family of each of n predictions, each on a new connection; every one must succeed."""
    families = []
    for _ in range(n):
        r = httpx.post(f"{url}/predict", json=body, timeout=10.0)
        assert r.status_code == 200, r.text
        families.append(r.json()["family_id"])
    return families


def families_described(url: str) -> set[str]:
    """The family /readyz and /tiers name, asked ten times each on new connections."""
    return ({httpx.get(f"{url}/readyz", timeout=10.0).json()["family_id"] for _ in range(10)}
            | {httpx.get(f"{url}/tiers", timeout=10.0).json()["family_id"] for _ in range(10)})


class Load(threading.Thread):
    """Predictions over a keep-alive connection until stopped: (started, finished, status, family)."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.stop = threading.Event()
        self.answers: list[tuple[float, float, int, str | None]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    r = client.post("/predict", json=self.body)
                except httpx.HTTPError as e:
                    self.errors.append(f"{type(e).__name__}: {e}")
                    continue
                family = r.json().get("family_id") if r.status_code == 200 else None
                self.answers.append((started, time.monotonic(), r.status_code, family))


def test_every_scrape_sums_both_workers_and_never_goes_backwards(server, batch_body):
    live = wait_for_workers(server.url, WORKERS)
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
    wait_for_workers(server.url, WORKERS, gone=victim)
    after = [predictions_total(scrape(server.url)) for _ in range(SCRAPES)]
    assert after == [PREDICTIONS] * SCRAPES, after
    r = httpx.post(f"{server.url}/predict", json=batch_body["items"][0], timeout=10.0)
    assert r.status_code == 200
    assert predictions_total(scrape(server.url)) == PREDICTIONS + 1


def test_tiers_reports_requests_of_every_worker(server):
    tiers = httpx.get(f"{server.url}/tiers", timeout=10.0).json()["tiers"]
    assert sum(t["live"]["requests"] for t in tiers) == predictions_total(scrape(server.url))


def test_a_reload_under_load_answers_once_every_worker_serves_the_new_family(
        server, store, batch_body, admin_token):
    old = set(wait_for_workers(server.url, WORKERS).values()).pop()
    new = copy_family(store, old, "fam-reloaded").name
    set_current(store, new)
    load = [Load(server.url, batch_body["items"][k]) for k in range(4)]
    for thread in load:
        thread.start()
    time.sleep(0.5)
    r = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {admin_token}"},
                   timeout=120.0)
    answered = time.monotonic()
    time.sleep(0.5)
    for thread in load:
        thread.stop.set()
        thread.join(30)

    assert r.status_code == 200, r.text
    assert r.json()["family_id"] == new and r.json()["previous_family_id"] == old
    answers = [a for thread in load for a in thread.answers]
    assert [e for thread in load for e in thread.errors] == [] and {a[2] for a in answers} == {200}
    assert {a[3] for a in answers if a[0] > answered} == {new}, "an answer begun after the reload was old"
    assert set(families_answering(server.url, batch_body["items"][0])) == {new}
    assert families_described(server.url) == {new}
    assert set(workers(server.url).values()) == {new}
    assert sorted((w["family_id"], w["state"]) for w in r.json()["workers"]) == [(new, "serving")] * WORKERS


def test_a_family_the_workers_refuse_leaves_every_worker_on_the_old_one(server, store, batch_body,
                                                                        admin_token):
    serving = set(wait_for_workers(server.url, WORKERS).values()).pop()
    broken = copy_family(store, serving, "fam-refused")
    (broken / "M2.onnx").write_bytes(b"not a model")
    set_current(store, broken.name)
    r = httpx.post(f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {admin_token}"},
                   timeout=120.0)
    assert r.status_code == 409, r.text
    assert "fam-refused" in r.json()["error"]["message"] and "M2" in r.json()["error"]["message"]
    assert set(families_answering(server.url, batch_body["items"][0])) == {serving}
    assert set(workers(server.url).values()) == {serving}


def test_a_worker_killed_while_current_points_elsewhere_comes_back_on_its_siblings_family(
        server, store, batch_body):
    live = wait_for_workers(server.url, WORKERS)
    serving = set(live.values()).pop()
    set_current(store, copy_family(store, serving, "fam-elsewhere").name)
    victim = min(live)
    os.kill(victim, signal.SIGKILL)  # as the OOM killer would
    back = wait_for_workers(server.url, WORKERS, gone=victim)
    assert set(back.values()) == {serving}
    assert set(families_answering(server.url, batch_body["items"][0])) == {serving}
    assert families_described(server.url) == {serving}


def test_a_worker_that_cannot_come_back_leaves_the_other_serving_until_its_family_loads_again(
        server, store, batch_body):
    live = wait_for_workers(server.url, WORKERS)
    serving = set(live.values()).pop()
    manifest = store / serving / MANIFEST
    intact = manifest.read_bytes()
    manifest.write_text("{")  # the family in service can no longer be loaded by a new worker
    victim = min(live)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "could not start" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "could not start" in server.log.read_text(), server.tail()
    assert set(families_answering(server.url, batch_body["items"][0])) == {serving}
    assert set(workers(server.url)) == set(live) - {victim}

    manifest.write_bytes(intact)  # retried with a growing pause: it is back within seconds
    assert set(wait_for_workers(server.url, WORKERS, gone=victim, seconds=45).values()) == {serving}
