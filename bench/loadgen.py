"""Closed-loop load on loopback: a fixed number of keep-alive connections send a rotating set of bodies
for a fixed time; requests/s, p50 and p99 latency, errors.

HTTP has two generators with one interface: `wrk` (the Debian package; a Lua script rotates the bodies,
hex-encoded one per line so binary bodies survive, and its `done` hook prints the numbers as JSON) and
a bounded Python client (raw asyncio streams, HTTP/1.1 keep-alive, uvloop when installed) for machines
without wrk. gRPC has one, `run_grpc`: grpc.aio channels (one HTTP/2 connection each, one call in flight
on each), sending pre-serialized messages. On 2 cores every generator shares the CPU with the server,
wrk far less than Python; compare rows measured with the same generator only.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TIMEOUT_SECONDS = 60  # a batch of 1,000 windows queued behind others takes seconds, not minutes
LUA = """
-- Bodies: one per line of the file named by the first script argument, hex-encoded; the other
-- arguments are headers, "Name: value".
local bodies, n, i = {}, 0, 0
local threads = 0
local headers = {["Content-Type"] = "application/json"}

function setup(thread)
  thread:set("first", threads)
  threads = threads + 1
end

function init(args)
  for k = 2, #args do
    local name, value = args[k]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  for line in io.lines(args[1]) do
    n = n + 1
    local body = line:gsub("%x%x", function(cc) return string.char(tonumber(cc, 16)) end)
    bodies[n] = wrk.format("POST", nil, headers, body)
  end
  i = ((first or 0) * 97) % n  -- each thread starts elsewhere in the rotation
end

function request()
  i = i % n + 1
  return bodies[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"requests": %.0f, "duration_us": %.0f, "p50_us": %.0f, "p99_us": %.0f, ' ..
    '"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Load:
    path: str  # e.g. /predict, or a gRPC method's path
    bodies: list[bytes]  # rotated through, one request each
    connections: int
    seconds: float
    headers: tuple[tuple[str, str], ...] = ()  # HTTP: sent with every body (Content-Type is JSON's)


@dataclass(frozen=True)
class Measured:
    client: str  # wrk | python
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers, timeouts, broken connections

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_installed() -> bool:
    return shutil.which("wrk") is not None


def measure(url: str, load: Load, client: str) -> Measured:
    return run_wrk(url, load) if client == "wrk" else run_python(url, load)


def run_wrk(url: str, load: Load) -> Measured:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script, bodies = Path(tmp) / "bodies.lua", Path(tmp) / "bodies.jsonl"
        script.write_text(LUA)
        bodies.write_text("\n".join(body.hex() for body in load.bodies) + "\n")
        threads = min(2, load.connections)
        command = ["wrk", "-t", str(threads), "-c", str(load.connections),
                   "-d", f"{max(1, round(load.seconds))}s", "--timeout", f"{TIMEOUT_SECONDS}s",
                   "-s", str(script), url + load.path, "--", str(bodies),
                   *(f"{name}: {value}" for name, value in load.headers)]
        out = subprocess.run(command, capture_output=True, text=True, check=True,
                             timeout=load.seconds + TIMEOUT_SECONDS + 30).stdout
    line = next((s for s in out.splitlines() if s.startswith("BENCH-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line: {out[-400:]}")
    r = json.loads(line.removeprefix("BENCH-RESULT "))
    seconds = r["duration_us"] / 1e6
    errors = int(r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"])
    return Measured("wrk", int(r["requests"]), seconds, r["requests"] / seconds, r["p50_us"] / 1e3,
                    r["p99_us"] / 1e3, errors)


def run_python(url: str, load: Load) -> Measured:
    host, port = url.removeprefix("http://").split(":")
    requests = [_request(host, load.path, body, dict(load.headers)) for body in load.bodies]
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        latencies, errors, seconds = runner.run(_drive(host, int(port), requests, load))
    return _measured("python", latencies, errors, seconds)


def _request(host: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = {"Host": host, "Content-Type": "application/json", **(headers or {}),
             "Content-Length": str(len(body))}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines.items()) + "\r\n"
    return head.encode() + body


def run_grpc(target: str, load: Load) -> Measured:
    """`load.path` is the method (/inference.GRPCInferenceService/ModelInfer), its bodies serialized
    requests; a response that is not OK counts as an error."""
    with asyncio.Runner() as runner:
        latencies, errors, seconds = runner.run(_drive_grpc(target, load))
    return _measured("grpc", latencies, errors, seconds)


async def _drive_grpc(target: str, load: Load) -> tuple[list[float], int, float]:
    import grpc

    latencies: list[float] = []
    errors = [0]
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    # A channel each, as HTTP has a connection each (with several workers the kernel spreads them).
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(load.connections)]
    started = time.perf_counter()
    deadline = started + load.seconds

    async def one(channel: grpc.aio.Channel, first: int) -> None:
        call = channel.unary_unary(load.path)  # no serializers: bytes in, bytes out
        i = first
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                await call(load.bodies[i % len(load.bodies)], timeout=TIMEOUT_SECONDS)
                latencies.append(time.perf_counter() - sent)
            except grpc.aio.AioRpcError:
                errors[0] += 1
            i += 1

    try:
        await asyncio.gather(*(one(c, k * 97) for k, c in enumerate(channels)))
    finally:
        for c in channels:
            await c.close()
    return latencies, errors[0], time.perf_counter() - started


def _measured(client: str, latencies: list[float], errors: int, seconds: float) -> Measured:
    ms = np.asarray(latencies) * 1e3
    p50, p99 = (float(np.percentile(ms, q)) for q in (50, 99)) if ms.size else (float("nan"),) * 2
    return Measured(client, len(latencies), seconds, len(latencies) / seconds, p50, p99, errors)


async def _drive(host: str, port: int, requests: list[bytes], load: Load) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = [0]
    started = time.perf_counter()
    deadline = started + load.seconds
    await asyncio.gather(*(_connection(host, port, requests, k * 97, deadline, latencies, errors)
                           for k in range(load.connections)))
    return latencies, errors[0], time.perf_counter() - started


async def _connection(host: str, port: int, requests: list[bytes], first: int, deadline: float,
                      latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = first
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            try:
                status = await asyncio.wait_for(_response(reader), TIMEOUT_SECONDS)
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                errors[0] += 1
                return
            latencies.append(time.perf_counter() - started)
            if not 200 <= status < 300:
                errors[0] += 1
    finally:
        writer.close()


async def _response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length framed, as uvicorn sends JSON) and return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                   if k.strip().lower() == "content-length"), None)
    if length is None:
        raise ConnectionError("a response without Content-Length")
    await reader.readexactly(length)
    return status
