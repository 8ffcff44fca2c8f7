"""The real server for the serving benchmark: `tiered serve` exactly as the container runs it
(`app.cli.SERVE_COMMAND`, configured by TIERED_* variables alone) on a free loopback port, and stopped
for sure when the benchmark ends (SIGTERM, then SIGKILL to its process group).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from app.cli import SERVE_COMMAND
from bench.family import tiered

HOST = "127.0.0.1"
READY_SECONDS = 180.0  # loading and warming four tiers per worker on a busy 2-core machine
STOP_SECONDS = 20.0


class ServerFailed(RuntimeError):
    """The server exited or never became ready; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def command() -> list[str]:
    """SERVE_COMMAND with its program resolved in this interpreter's environment."""
    program = shutil.which(SERVE_COMMAND[0], path=str(Path(tiered()[0]).parent))
    if program is None:
        return [*tiered(), *SERVE_COMMAND[1:]]
    return [program, *SERVE_COMMAND[1:]]


def environment(store: Path, port: int, workers: int, settings: dict[str, str]) -> dict[str, str]:
    # The caller's own TIERED_* variables are dropped: the benchmark's configuration is all in its JSON.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERED_")}
    return {**env, "TIERED_MODELS_DIR": str(store), "TIERED_HOST": HOST, "TIERED_PORT": str(port),
            "TIERED_WORKERS": str(workers), "TIERED_BENCH_ROUTES": "1", "TIERED_ACCESS_LOG": "false",
            "TIERED_LOG_LEVEL": "warning", **settings}


@contextmanager
def running(store: Path, workers: int, log: Path, settings: dict[str, str] | None = None) -> Iterator[str]:
    """The base URL of a ready server; the server is stopped when the block ends, however it ends."""
    port = free_port()
    env = environment(store, port, workers, settings or {})
    url = f"http://{HOST}:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(command(), env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            _wait_ready(url, process, log)
            yield url
        finally:
            stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerFailed(f"tiered serve exited with {process.returncode}: {_tail(log)}")
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise ServerFailed(f"tiered serve was not ready after {READY_SECONDS:.0f} s: {_tail(log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn drains and stops its workers); SIGKILL to the whole group if that takes too long."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_SECONDS)
    # The group is the server's own session (start_new_session): workers left behind go with it.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"
