"""Graceful shutdown of the real server: SIGTERM during a short load lets every request the server has
received finish, refuses new connections meanwhile, and ends `tiered serve` with exit code 0 within
TIERED_SHUTDOWN_GRACE_SECONDS; a client that never finishes its request does not hold it longer. With
gRPC on, calls in flight at SIGTERM are answered and later ones refused with UNAVAILABLE.

tests/app/test_settings_and_cli.py already checks that an idle server exits 0 on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.reliability.conftest import read_response

pytestmark = pytest.mark.slow

CONNECTIONS = 8
WARM_REQUESTS = 40  # /predict calls per connection before the slow ones
BATCH_ITEMS = 400  # each connection's last request: a batch the server takes a while over
GRACE_SECONDS = 15.0
EXIT_SLACK_SECONDS = 3.0  # interpreter and onnxruntime teardown after uvicorn stops


def request(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Client(threading.Thread):
    """One connection: WARM_REQUESTS /predict calls, then the batch, whose answer arrives after SIGTERM."""

    def __init__(self, port: int, predict: bytes, batch: bytes) -> None:
        super().__init__(daemon=True)
        self.port, self.predict, self.batch = port, predict, batch
        self.warm: list[int] = []
        self.batch_sent, self.batch_answered = threading.Event(), threading.Event()
        self.batch_status, self.batch_results, self.error = 0, 0, ""
        self.local_port = 0

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
                self.local_port = s.getsockname()[1]
                buffer = bytearray()
                for _ in range(WARM_REQUESTS):
                    s.sendall(self.predict)
                    self.warm.append(read_response(s, buffer)[0])
                s.sendall(self.batch)
                self.batch_sent.set()
                self.batch_status, body = read_response(s, buffer)
                self.batch_results = len(json.loads(body).get("results", []))
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.batch_sent.set()
            self.batch_answered.set()


def unread_bytes(server_port: int, client_port: int) -> int | None:
    """Bytes of this connection the server has not read yet: what the kernel still holds in the
    client's send queue and the server's receive queue (from /proc/net/tcp); None when not listed."""
    queues: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        tx, rx = (int(q, 16) for q in fields[4].split(":"))
        if (local, remote) == (server_port, client_port):
            queues["server"] = rx
        elif (local, remote) == (client_port, server_port):
            queues["client"] = tx
    return None if len(queues) < 2 else sum(queues.values())


def read_by_server(server_port: int, clients: list[Client], timeout: float) -> bool:
    """Wait until the server has read every byte of every client's batch: a request still in the
    kernel's buffer at SIGTERM was never received, and uvicorn rightly closes its idle connection."""
    pending = set(range(len(clients)))
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {i for i in pending
                   if unread_bytes(server_port, clients[i].local_port) != 0
                   and not clients[i].batch_answered.is_set()}
        time.sleep(0.002)
    return not pending


def connection_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_under_load_drains_in_flight_requests_refuses_new_ones_and_exits_0(
        quick_store: Path, serve: Any, tmp_path: Path, batch_body: dict[str, Any]) -> None:
    items = batch_body["items"]
    predict = request("/predict", json.dumps(items[0]).encode())
    batch = request("/predict/batch", json.dumps({"items": (items * BATCH_ITEMS)[:BATCH_ITEMS]}).encode())
    with serve(quick_store, tmp_path / "server.log", TIERED_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
               TIERED_MAX_BATCH_ITEMS="1000", TIERED_MAX_BODY_BYTES=str(64 << 20)) as server:
        clients = [Client(server.port, predict, batch) for _ in range(CONNECTIONS)]
        for c in clients:
            c.start()
        for c in clients:
            assert c.batch_sent.wait(120), "a client never sent its batch"
        assert read_by_server(server.port, clients, 60), "the server never read every batch"
        assert not all(c.batch_answered.is_set() for c in clients), "the batches were answered too soon"
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        refused_while_draining = False
        while server.process.poll() is None and time.monotonic() - signalled < GRACE_SECONDS:
            if connection_refused(server.port):
                refused_while_draining = not all(c.batch_answered.is_set() for c in clients)
                break
            time.sleep(0.01)
        code = server.process.wait(GRACE_SECONDS + EXIT_SLACK_SECONDS)
        exited_after = time.monotonic() - signalled
        for c in clients:
            c.join(10)

    assert [c.error for c in clients] == [""] * CONNECTIONS, server.tail()
    assert all(c.warm == [200] * WARM_REQUESTS for c in clients)
    assert [(c.batch_status, c.batch_results) for c in clients] == [(200, BATCH_ITEMS)] * CONNECTIONS
    assert refused_while_draining, "new connections must be refused while in-flight requests finish"
    assert code == 0, server.tail()
    assert exited_after < GRACE_SECONDS + EXIT_SLACK_SECONDS, exited_after


def test_a_client_that_never_finishes_its_request_cannot_hold_the_shutdown(
        quick_store: Path, serve: Any, tmp_path: Path) -> None:
    grace = 1.0
    with serve(quick_store, tmp_path / "server.log", TIERED_SHUTDOWN_GRACE_SECONDS=str(grace)) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=30) as stalled:
        # Half a body, and then nothing: an in-flight request that would never end on its own.
        stalled.sendall(request("/predict", b"{" * 2000)[:-1000])
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = server.process.wait(grace + EXIT_SLACK_SECONDS + 10)
        exited_after = time.monotonic() - signalled
    assert code == 0, server.tail()
    assert grace <= exited_after < grace + EXIT_SLACK_SECONDS, exited_after


class GrpcCaller(threading.Thread):
    """Back-to-back ModelInfer calls of the routed model with the stock client, until one is refused."""

    def __init__(self, port: int, window: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.port, self.window = port, window
        self.calls: list[tuple[float, float, str]] = []  # (started, ended, status)

    def run(self) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.port}")
        tensor = grpcclient.InferInput("WINDOW", list(self.window.shape), "FP32")
        tensor.set_data_from_numpy(self.window)
        while True:
            started = time.monotonic()
            try:
                client.infer("tiered", [tensor], client_timeout=60)
                self.calls.append((started, time.monotonic(), "OK"))
            except InferenceServerException as e:
                self.calls.append((started, time.monotonic(), str(e.status())))
                return


def test_sigterm_lets_grpc_calls_in_flight_finish_then_refuses_new_ones_and_exits_0(
        quick_store: Path, serve: Any, tmp_path: Path, market: Any, free_port: Any) -> None:
    c = market.candles
    bars = np.stack([c.open, c.high, c.low, c.close, c.volume], axis=1)[1000:1000 + 48].astype(np.float32)
    window = np.repeat(bars[None], 256, axis=0)  # a call the server takes a while over
    grpc_port = free_port()
    with serve(quick_store, tmp_path / "server.log", TIERED_GRPC_PORT=str(grpc_port),
               TIERED_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS)) as server:
        callers = [GrpcCaller(grpc_port, window) for _ in range(4)]
        for caller in callers:
            caller.start()
        deadline = time.monotonic() + 60
        while min(len(caller.calls) for caller in callers) < 2:
            assert all(caller.is_alive() for caller in callers), [caller.calls for caller in callers]
            assert time.monotonic() < deadline, "the callers never got two answers each"
            time.sleep(0.01)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(2 * GRACE_SECONDS + EXIT_SLACK_SECONDS)
        exited_after = time.monotonic() - signalled
        for caller in callers:
            caller.join(30)
    calls = [call for caller in callers for call in caller.calls]
    before = [status for started, _, status in calls if started < signalled]
    assert before == ["OK"] * len(before), "a call sent before SIGTERM must be answered"
    assert any(started < signalled < ended for started, ended, _ in calls), "no call was in flight"
    # Calls sent after SIGTERM: answered while the gRPC server still runs, then refused. gRPC's core
    # cancels the calls that had arrived but were not handed to the service yet (CANCELLED: never
    # started, safe to retry) and refuses later ones (UNAVAILABLE); nothing else.
    after = {status for started, _, status in calls if started >= signalled}
    assert after <= {"OK", "StatusCode.CANCELLED", "StatusCode.UNAVAILABLE"}, calls
    assert code == 0, server.tail()
    assert exited_after < GRACE_SECONDS + EXIT_SLACK_SECONDS, exited_after
