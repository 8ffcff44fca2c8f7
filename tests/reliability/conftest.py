"""Fixtures for the reliability tests: the real app (lifespan included) and the real server (`tiered
serve` on a free loopback port) over private copies of the quick family, and request bodies cut from a
regime-mixed synthetic market, so that the router sends some to every tier.

The quick family itself is the session fixture `quick_store` (tests/conftest.py); a test that damages
a family damages a copy (`store_copy`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from market.regime import REGIMES
from market.synthetic import SyntheticMarket, simulate
from models.store import MANIFEST

HOST = "127.0.0.1"
READY_SECONDS = 120.0  # four tiers loaded and warmed up on a busy 2-core machine

# An absolute path under a root this machine has; the stores of the tests live below /tmp.
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:tmp|home|root|work|usr|etc|var|opt|proc|srv|mnt)\b")


def assert_discreet(text: str) -> None:
    """What a client or operator reads must never carry a stack trace or a file system path."""
    assert "Traceback" not in text and 'File "' not in text, text
    assert not ABSOLUTE_PATH.search(text), text


def assert_sound(text: str) -> Any:
    """A response body: strict JSON (no NaN or Infinity tokens), finite numbers only, discreet."""
    def reject(token: str) -> None:
        raise AssertionError(f"the response holds {token}")

    def walk(value: Any) -> None:
        if isinstance(value, float):
            assert math.isfinite(value), value
        for v in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            walk(v)
    data = json.loads(text, parse_constant=reject)
    walk(data)
    assert_discreet(text)
    return data


@pytest.fixture(scope="session")
def discreet() -> Callable[[str], None]:
    return assert_discreet


@pytest.fixture(scope="session")
def sound() -> Callable[[str], Any]:
    return assert_sound


MARKET_BARS, MARKET_SEED = 20_000, 11  # not the training market's seed: the windows are new to the family
PER_REGIME = 8


def window_request(market: SyntheticMarket, end: int, n: int = 48) -> dict[str, Any]:
    """The /predict body for the n candles ending at bar `end`, with the book at its close."""
    c = market.candles
    candles = [{"ts": int(c.ts[t]), "open": float(c.open[t]), "high": float(c.high[t]),
                "low": float(c.low[t]), "close": float(c.close[t]), "volume": float(c.volume[t])}
               for t in range(end - n + 1, end + 1)]
    book = {"bids": [[float(market.bid[end]), float(market.bid_size[end])]],
            "asks": [[float(market.ask[end]), float(market.ask_size[end])]]}
    return {"symbol": "SYNTH", "candles": candles, "book": book}


@pytest.fixture(scope="session")
def market() -> SyntheticMarket:
    return simulate(MARKET_BARS, MARKET_SEED)


@pytest.fixture(scope="session")
def requests_by_regime(market: SyntheticMarket) -> dict[str, list[dict[str, Any]]]:
    """PER_REGIME /predict bodies ending in each true regime, spread over the market."""
    out = {}
    for k, name in enumerate(REGIMES):
        ends = np.flatnonzero(market.regime[100:] == k) + 100
        assert ends.size >= PER_REGIME, f"the market has too few {name} bars"
        out[name] = [window_request(market, int(e)) for e in ends[:: ends.size // PER_REGIME][:PER_REGIME]]
    return out


@pytest.fixture(scope="session")
def batch_body(requests_by_regime: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A /predict/batch body with windows of every regime: the router sends some to every tier."""
    return {"items": [r for name in REGIMES for r in requests_by_regime[name]]}


def copy_family(store: Path, family_id: str, new_id: str) -> Path:
    """A copy of a family of the store under a new id, which its manifest names too; CURRENT unchanged."""
    copy = store / new_id
    shutil.copytree(store / family_id, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "family_id": new_id}))
    return copy


def read_response(s: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """One Content-Length framed response from the socket; `buffer` keeps what belongs to the next."""
    while b"\r\n\r\n" not in buffer:
        more = s.recv(65536)
        if not more:
            raise ConnectionError("closed before a response")
        buffer += more
    top, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                  if k.strip().lower() == "content-length")
    start = len(top) + 4
    while len(buffer) < start + length:
        more = s.recv(65536)
        if not more:
            raise ConnectionError("closed in the middle of a response")
        buffer += more
    body = bytes(buffer[start:start + length])
    del buffer[:start + length]
    return int(lines[0].split()[1]), body


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running `tiered serve`: its URL, process (the supervisor) and log file."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def workers(self) -> list[int]:
        """The pids of the processes that serve: the supervisor's workers (spawned interpreters), or the
        server's own when it has none."""
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                continue
            if ppid == self.process.pid and b"spawn_main" in command:
                pids.append(int(entry.name))
        return sorted(pids) or [self.process.pid]


def server_environment(store: Path, port: int, settings: dict[str, str]) -> dict[str, str]:
    # The caller's TIERED_* variables are dropped: a test's server is configured here alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERED_")}
    return {**env, "TIERED_MODELS_DIR": str(store), "TIERED_HOST": HOST, "TIERED_PORT": str(port),
            "TIERED_LOG_LEVEL": "warning", "TIERED_ACCESS_LOG": "false", **settings}


@contextmanager
def serving(store: Path, log: Path, open_files: int | None = None, **settings: str) -> Iterator[Server]:
    """`tiered serve` on a free loopback port, ready; stopped (SIGTERM, then SIGKILL) however it ends.
    `open_files`: the server's open-file limit (`ulimit -n`), soft and hard."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "tiered"), "serve"]
    if open_files is not None:  # the shell sets the limit, then becomes the server (exec)
        command = ["sh", "-c", f'ulimit -n {open_files} && exec "$0" "$@"', *command]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=server_environment(store, port, settings),
                                   stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        server = Server(f"http://{HOST}:{port}", port, process, log)
        try:
            _wait_ready(server)
            yield server
        finally:
            _stop(process)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"tiered serve exited with {server.process.returncode}:\n{server.tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"tiered serve was not ready within {READY_SECONDS:.0f} s:\n{server.tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def serve() -> Callable[..., Any]:
    """`with serve(store, log, TIERED_X="...") as server:` runs the real server for the block."""
    return serving
