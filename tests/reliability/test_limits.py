"""Hostile clients against the real server (`tiered serve`): the timeouts and limits it applies itself
(app/connections.py, app/limits.py), set short through the settings so that each check takes about a
second. Each was a finding of issue 13 on the code before them:

  * silent connections, heads trickled a line at a time, bodies that stop half-way or crawl, and idle
    kept-alive connections all stayed open (past 75 s);
  * stalled uploads held their buffers (100 × 3.9 MB: 108 → 494 MB resident) until the client left;
  * a 10 MB header was accepted, and an unterminated 60 MB one cost 6 s of CPU;
  * at `ulimit -n` 1024, 1,100 silent sockets made /healthz and /predict fail for as long as they stayed.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import read_response

pytestmark = pytest.mark.slow

HEADER, GAP, BODY, KEEP_ALIVE = 1.0, 1.0, 3.0, 1.0  # seconds, as the server below is configured
LIMITS = {"TIERED_HEADER_TIMEOUT_SECONDS": str(HEADER), "TIERED_BODY_GAP_SECONDS": str(GAP),
          "TIERED_BODY_TIMEOUT_SECONDS": str(BODY), "TIERED_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE)}
SLACK = 2.0  # a timer fires late on a busy 2-core machine, never early
MAX_HEADER = 16 * 1024  # the default
OPEN_FILES = 256  # the open-file limit of the server in the last tests: 192 connections per worker
STALLED, STALLED_BYTES, DECLARED = 24, 3_900_000, 4_000_000


@pytest.fixture(scope="module")
def server(quick_store: Path, serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with serve(quick_store, tmp_path_factory.mktemp("limits") / "server.log", **LIMITS) as s:
        yield s


def connect(port: int, timeout: float = HEADER + BODY + 2 * SLACK) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def until_closed(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took; the socket's
    timeout fails the test if it never closes."""
    started, received = time.monotonic(), b""
    while chunk := s.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def head(path: str = "/healthz", method: str = "GET", extra: bytes = b"") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra + b"\r\n"


def predict_head(length: int) -> bytes:
    fields = f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
    return head("/predict", "POST", fields.encode())


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"/proc/{pid}/status has no VmRSS")


def peak_rss_mib(pid: int, seconds: float) -> float:
    """The largest resident size read every 0.1 s for `seconds`."""
    peak, deadline = rss_mib(pid), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        peak = max(peak, rss_mib(pid))
    return peak


def test_silent_connections_are_closed_once_the_header_timeout_passes(server):
    started = time.monotonic()
    sockets = [connect(server.port) for _ in range(10)]
    received = [until_closed(s)[0] for s in sockets]
    took = time.monotonic() - started
    for s in sockets:
        s.close()
    assert received == [b""] * 10, "a silent client gets nothing, not even a 408"
    assert HEADER * 0.9 <= took < HEADER + SLACK, took


def test_a_head_trickled_a_line_at_a_time_is_answered_408_when_the_header_timeout_passes(server):
    with connect(server.port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        for k in range(20):  # a line every 0.25 s, until the server answers
            if select.select([s], [], [], 0.25)[0]:
                break
            s.sendall(f"X-Line-{k}: still coming\r\n".encode())
        answer, _ = until_closed(s)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"TIERED_HEADER_TIMEOUT_SECONDS" in answer
    assert time.monotonic() - started < HEADER + SLACK + 0.25


@pytest.mark.parametrize(("pause", "variable"), [(None, "TIERED_BODY_GAP_SECONDS"),
                                                 (GAP / 3, "TIERED_BODY_TIMEOUT_SECONDS")],
                         ids=["stops_half_way", "crawls"])
def test_a_body_that_stops_or_crawls_is_answered_408(server, pause, variable):
    with connect(server.port) as s:
        s.sendall(predict_head(1000) + b'{"candles": ')
        started = time.monotonic()
        try:
            while pause is not None and time.monotonic() - started < BODY + SLACK:
                time.sleep(pause)
                s.sendall(b" ")  # within the gap every time, never finishing
        except OSError:
            pass
        answer, _ = until_closed(s)
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ") and variable.encode() in answer, answer
    assert took < (GAP if pause is None else BODY) + SLACK, took


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_time(server):
    with connect(server.port) as s:
        s.sendall(head())
        status, _ = read_response(s, bytearray())
        assert status == 200
        rest, took = until_closed(s)
    assert rest == b"" and took < KEEP_ALIVE + SLACK, took


def test_stalled_uploads_release_their_memory_when_they_time_out(server):
    (worker,) = server.workers()
    before = rss_mib(worker)
    sockets = [connect(server.port) for _ in range(STALLED)]
    for s in sockets:
        s.sendall(predict_head(DECLARED) + b" " * STALLED_BYTES)  # and then nothing
    held = peak_rss_mib(worker, GAP)
    answers = [until_closed(s)[0] for s in sockets]
    for s in sockets:
        s.close()
    time.sleep(0.5)
    after = rss_mib(worker)
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    stalled_mib = STALLED * STALLED_BYTES / 2**20
    assert held - before > stalled_mib / 3, (before, held)  # the server did hold them for a while
    assert after - before < stalled_mib / 4, (before, held, after)


def test_a_head_over_the_limit_is_answered_431_before_it_is_read_whole(server):
    with connect(server.port) as s:
        s.sendall(head(extra=b"X-Big: " + b"a" * (MAX_HEADER - 200) + b"\r\n"))
        assert read_response(s, bytearray())[0] == 200, "a head within the limit is served"
    with connect(server.port) as s:
        s.sendall(head(extra=b"X-Big: " + b"a" * MAX_HEADER + b"\r\n"))
        answer, _ = until_closed(s)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"TIERED_MAX_HEADER_BYTES" in answer, answer

    # An unterminated 60 MB head: refused after its first reads, while health checks stay quick.
    sent = [0]

    def flood() -> None:
        with connect(server.port) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nX-Flood: ")
            try:
                while sent[0] < 60 << 20:
                    s.sendall(b"a" * (1 << 20))
                    sent[0] += 1 << 20
            except OSError:
                pass
    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    checks = []
    for _ in range(10):
        started = time.monotonic()
        assert httpx.get(f"{server.url}/healthz", timeout=10.0).status_code == 200
        checks.append(time.monotonic() - started)
    flooder.join(10)
    assert not flooder.is_alive() and sent[0] < 8 << 20, f"the server read {sent[0]} bytes of the head"
    assert max(checks) < 0.5, checks


@pytest.fixture(scope="module")
def crowded(quick_store: Path, serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server that may open only OPEN_FILES files, with a header timeout too long to help."""
    log = tmp_path_factory.mktemp("crowded") / "server.log"
    with serve(quick_store, log, open_files=OPEN_FILES, TIERED_HEADER_TIMEOUT_SECONDS="60") as s:
        yield s


def test_hundreds_of_silent_sockets_never_lock_out_health_checks_or_predictions(crowded, batch_body):
    sockets = [connect(crowded.port, timeout=60) for _ in range(OPEN_FILES + 100)]
    try:
        for k in range(10):
            assert httpx.get(f"{crowded.url}/healthz", timeout=5.0).status_code == 200
            r = httpx.post(f"{crowded.url}/predict", json=batch_body["items"][k], timeout=5.0)
            assert r.status_code == 200, r.text
    finally:
        for s in sockets:
            s.close()


def test_a_connection_over_the_limit_when_every_one_is_busy_is_answered_503(crowded):
    limit = OPEN_FILES - 64  # app.connections.RESERVED_FILES
    busy = [connect(crowded.port, timeout=10) for _ in range(limit)]
    try:
        for s in busy:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")  # a request in progress: not idle, never evicted
        time.sleep(0.5)
        with connect(crowded.port, timeout=10) as extra:
            extra.sendall(head())
            answer, _ = until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer, answer
        for s in busy[:5]:
            s.sendall(b"Host: 127.0.0.1\r\n\r\n")
            assert read_response(s, bytearray())[0] == 200, "the busy connections are served"
    finally:
        for s in busy:
            s.close()
