"""A soak of the real server: about a minute at 80% of its measured capacity, where no request may fail
and the server's resident memory must not grow.

    python -m bench.soak [--quick] [--workers N] [--models DIR] [--out DIR]

`tiered serve` (one worker by default, as the container runs it; `--workers 2` for the supervisor and two
workers) on a free loopback port. First its capacity:
closed-loop POST /predict over 16 connections (bench.loadgen's Python client, a regime-mixed rotation
of windows from bench.bodies). Then an open-loop load paced at 80% of that rate: request k is due at
start + k / rate, and its latency counts from when it was due, so a server that falls behind shows it in
the percentiles instead of slowing the client down (no coordinated omission). Reported: requests,
errors (target 0), achieved rate, p50, p99 and max latency, and the server's VmRSS (from /proc: the
`tiered serve` process and its workers together) when the paced load starts and when it ends (target:
growth under 10%), sampled every second.

Full: 5 s capacity probe after a 2 s warm-up, 60 s paced; the default family is trained first unless
`--models` names a store. Quick (the suite): a --quick family, 2 s probe, 10 s paced.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench import bodies, loadgen, server
from bench.common import cli, table
from bench.family import family_store, store_options

PATH = "/predict"
SHARE = 0.8  # of the measured capacity
TARGET_ERRORS, TARGET_GROWTH = 0, 0.10
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Plan:
    warmup: float
    probe_seconds: float
    probe_connections: int
    soak_seconds: float
    connections: int  # open-loop pool: enough that the due requests never wait for a free one
    per_regime: int


FULL = Plan(2.0, 5.0, 16, 60.0, 32, 64)
QUICK = Plan(0.5, 2.0, 16, 10.0, 32, 16)


def run(quick: bool, out: Path, models: Path | None = None, workers: int = 1) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    windows = bodies.regime_mixed(plan.per_regime)
    payloads = [windows.body(k) for k in range(len(windows.ends))]
    load_before = os.getloadavg()
    with family_store(models, quick) as store, tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, \
            server.running(store.path, workers, Path(tmp) / "server.log") as url:
        pid = server_pid(url)
        rss_ready = rss_mib(pid)
        processes = 1 + len(_children(pid))
        print(f"bench.soak: capacity probe, {plan.probe_seconds:.0f} s", file=sys.stderr)
        loadgen.measure(url, loadgen.Load(PATH, payloads, plan.probe_connections, plan.warmup), "python")
        probe = loadgen.measure(url, loadgen.Load(PATH, payloads, plan.probe_connections, plan.probe_seconds),
                                "python")
        rate = SHARE * probe.rps
        print(f"bench.soak: {plan.soak_seconds:.0f} s at {rate:.0f} requests/s", file=sys.stderr)
        with _runner() as runner:
            soak = runner.run(paced(url, payloads, rate, plan, pid))
    ms = np.asarray(soak.latencies) * 1e3
    rss = soak.rss
    return {
        "family": store.describe(), "plan": asdict(plan), "workers": workers,
        "server_processes": processes, "path": PATH, "share": SHARE,
        "capacity": probe.to_dict(), "target_rps": rate,
        "requests": len(ms), "errors": soak.errors, "achieved_rps": len(ms) / soak.seconds,
        "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "late_share": soak.late / max(1, len(ms)),
        "rss_mib": {"ready": rss_ready, "start": rss[0], "end": rss[-1], "peak": max(rss)},
        "rss_growth": rss[-1] / rss[0] - 1.0, "rss_samples_mib": rss,
        # Other work on the machine moves every figure; the 1-minute load average says how much.
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
    }


def _runner() -> asyncio.Runner:
    """uvloop when installed, as bench.loadgen's client measured the capacity with it."""
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


def server_pid(url: str) -> int:
    """The `tiered serve` process bench.server started for this URL: our child with its port."""
    port = url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and f"TIERED_PORT={port}".encode() in environ:
            return int(entry.name)
    raise server.ServerFailed(f"no child process serves {url}")


def rss_mib(pid: int) -> float:
    """VmRSS of the process and its children (the supervisor's workers), MiB."""
    return _own_rss_mib(pid) + sum(_own_rss_mib(c, gone_ok=True) for c in _children(pid))


def _own_rss_mib(pid: int, gone_ok: bool = False) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        if gone_ok:  # a worker that ended between the listing and the read
            return 0.0
        raise
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise server.ServerFailed(f"/proc/{pid}/status has no VmRSS")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class Soaked:
    latencies: list[float]  # seconds, from when each request was due
    sent: int
    errors: int  # non-2xx answers, timeouts, broken connections, and requests never sent because of them
    late: int  # requests sent more than 10 ms after they were due (the pool could not keep up)
    seconds: float
    rss: list[float]  # MiB: at the start, every second, at the end


async def paced(url: str, payloads: list[bytes], rate: float, plan: Plan, pid: int) -> Soaked:
    host, port = url.removeprefix("http://").split(":")
    # bench.loadgen's HTTP/1.1 framing: Content-Length requests, Content-Length responses.
    requests = [loadgen._request(host, PATH, body) for body in payloads]
    total = int(rate * plan.soak_seconds)
    result = Soaked([], 0, 0, 0, 0.0, [rss_mib(pid)])
    next_due = [0]
    start = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while next_due[0] < total:
                k = next_due[0]
                next_due[0] += 1
                due = start + k / rate
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                elif wait < -0.010:
                    result.late += 1
                writer.write(requests[k % len(requests)])
                result.sent += 1
                try:
                    status = await asyncio.wait_for(loadgen._response(reader), TIMEOUT_SECONDS)
                except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                    result.errors += 1
                    return
                result.latencies.append(time.perf_counter() - due)
                if not 200 <= status < 300:
                    result.errors += 1
        finally:
            writer.close()

    async def watch() -> None:
        while next_due[0] < total:
            await asyncio.sleep(1.0)
            result.rss.append(rss_mib(pid))

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(connection() for _ in range(plan.connections)))
    result.seconds = time.perf_counter() - start
    watcher.cancel()
    result.rss.append(rss_mib(pid))
    result.errors += total - result.sent
    return result


def markdown(result: dict[str, Any]) -> str:
    cap, rss = result["capacity"], result["rss_mib"]
    rows = [
        (f"capacity (closed loop, {result['plan']['probe_connections']} connections)",
         f"{cap['rps']:.0f} requests/s", f"p50 {cap['p50_ms']:.2f} ms, p99 {cap['p99_ms']:.2f} ms"),
        (f"paced at {result['share']:.0%} of it", f"{result['target_rps']:.0f} requests/s",
         f"{result['plan']['soak_seconds']:.0f} s, {result['plan']['connections']} connections"),
        ("achieved", f"{result['achieved_rps']:.0f} requests/s", f"{result['requests']} requests"),
        ("errors", str(result["errors"]), "target 0: " + _met(result["errors"] <= TARGET_ERRORS)),
        ("latency from due time", f"p50 {result['p50_ms']:.2f} ms", f"p99 {result['p99_ms']:.2f} ms, "
                                                                    f"max {result['max_ms']:.1f} ms"),
        ("server VmRSS (all processes)", f"{rss['start']:.1f} → {rss['end']:.1f} MiB",
         f"growth {result['rss_growth']:+.1%}, peak {rss['peak']:.1f} MiB; target under "
         f"{TARGET_GROWTH:.0%}: " + _met(result["rss_growth"] < TARGET_GROWTH)),
    ]
    load = result["load_average"]
    workers = result.get("workers", 1)
    title = f"soak of POST /predict, {'one worker' if workers == 1 else f'{workers} workers'}"
    return (table((title, "figure", "detail"), rows)
            + f"\n\nServer VmRSS when ready (before any load): {rss['ready']:.1f} MiB. "
            f"Requests sent over 10 ms late: {result['late_share']:.1%}. "
            f"1-minute load average {load['before']:.1f} before, {load['after']:.1f} after.")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _workers(argv: list[str]) -> tuple[int, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workers", type=int, default=1)
    known, rest = parser.parse_known_args(argv)
    return known.workers, rest


if __name__ == "__main__":
    extra, rest = store_options(sys.argv[1:])
    workers, rest = _workers(rest)
    name = "soak" if workers == 1 else f"soak_workers{workers}"  # its own result file
    cli(name, partial(run, **extra, workers=workers), markdown, rest)
