"""The decision log: one JSON line per answered prediction, shaped as a CloudEvent, for audits.

    TIERED_DECISION_LOG=/var/log/tiered/decisions.jsonl tiered serve
    tiered replay-log /var/log/tiered/decisions.jsonl*        # recompute every decision (app/audit.py)

Off by default. Each line is a CloudEvent in the JSON format (specversion 1.0): `id` (unique), `source`
(`/tiered/<host>/<pid>`: this worker), `type`, `time`, `datacontenttype` and `data`:

  * `org.tiered.decision`: an answer. `data` holds the symbol (a followed one's, else null), the window's
    sha256 (`Served.window_sha256`), the bar time, the signals, the regime and where it came from
    (`detector`, or `caller`: a followed symbol's hysteresis), the tier, requested tier, reason, override
    and budget, the family id and the tier file's sha256, the features the tier ran on, its output and
    the prediction, the latency, and every shadow tier's output when the answer was sampled.
  * `org.tiered.outcome`: a followed symbol's realised target once its horizon passed; `subject` and
    `data.decision` are the id of the decision it completes.

Lines are encoded and written by one background thread from a bounded queue: a request never waits for
the disk. When the queue is full (a slow or stalled disk) the line is dropped and counted in
`tiered_decision_log_lines_total{outcome="dropped"}`; written lines count as `written`. The file rotates
by size: past `max_bytes` it becomes `PATH.1` (`PATH.1` becomes `PATH.2`, ... up to `backups`, the
oldest deleted) and a new PATH is started; every line is written whole before a rotation.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter

from app.quality import Outcome
from app.served import Served

log = logging.getLogger("app.decisions")

SPECVERSION = "1.0"
DECISION = "org.tiered.decision"
OUTCOME = "org.tiered.outcome"
_STOP = object()


class DecisionLog:
    def __init__(self, path: Path, registry: CollectorRegistry, max_bytes: int = 64 << 20, backups: int = 5,
                 queue_size: int = 10_000) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self.source = f"/tiered/{socket.gethostname()}/{os.getpid()}"
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._write, name="decision log", daemon=True)
        lines = Counter("tiered_decision_log_lines", "Decision log lines, by outcome (written; dropped: the "
                        "writer's queue was full).", ["outcome"], registry=registry)
        self.written, self.dropped = lines.labels("written"), lines.labels("dropped")
        self._encode = msgspec.json.Encoder().encode

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting at most `timeout` seconds for a stalled disk) and stop."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("decision log: the writer is stalled; %d queued lines are lost", self._queue.qsize())
            return
        self._thread.join(timeout)

    # -- what the service hands in (on the event loop: never blocks) -------------------------------

    def on_served(self, records: list[Served]) -> None:
        for r in records:
            self._put(event(DECISION, r.id, self.source, decision(r)))

    def on_realised(self, pairs: list[tuple[Served, Outcome]]) -> None:
        for r, o in pairs:
            data = {"decision": r.id, "symbol": o.symbol, "bar_ts": o.ts, "target": r.answer.target.name,
                    "horizon": r.answer.target.horizon, "realised": o.y}
            self._put(event(OUTCOME, f"{r.id}-outcome", self.source, data, subject=r.id))

    def _put(self, item: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped.inc()

    # -- the writer thread ------------------------------------------------------------------------

    def _write(self) -> None:
        file = None
        size = 0
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            line = self._encode(item) + b"\n"
            try:
                if file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    file = open(self.path, "ab")  # noqa: SIM115 - held open across lines, closed below
                    size = self.path.stat().st_size
                file.write(line)
                file.flush()
                size += len(line)
                self.written.inc()
                if size >= self.max_bytes:
                    file.close()
                    file = None
                    self._rotate()
            except OSError as e:
                log.error("decision log %s: %s; the line is dropped", self.path, e)
                self.dropped.inc()
                file = None
        if file is not None:
            file.close()

    def _rotate(self) -> None:
        """PATH → PATH.1 → PATH.2 ... → PATH.<backups>, the oldest deleted."""
        numbered = [self.path.with_name(f"{self.path.name}.{k}") for k in range(1, self.backups + 1)]
        if not numbered:
            self.path.unlink(missing_ok=True)
            return
        numbered[-1].unlink(missing_ok=True)
        for older, newer in zip(reversed(numbered[1:]), reversed(numbered[:-1]), strict=True):
            if newer.exists():
                newer.rename(older)
        self.path.rename(numbered[0])


def event(kind: str, event_id: str, source: str, data: dict[str, Any], subject: str | None = None
          ) -> dict[str, Any]:
    """A CloudEvent (JSON format, specversion 1.0) around `data`."""
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    out: dict[str, Any] = {"specversion": SPECVERSION, "id": event_id, "source": source, "type": kind,
                           "time": now, "datacontenttype": "application/json"}
    if subject is not None:
        out["subject"] = subject
    out["data"] = data
    return out


def decision(r: Served) -> dict[str, Any]:
    """What an answer was and why: enough to recompute it from the family (`app/audit.py`)."""
    a, q = r.answer, r.query
    d = a.decision
    tier = r.family.tiers[d.tier].entry
    prediction = a.prediction if isinstance(a.prediction, float) else dataclasses.asdict(a.prediction)
    return {
        "symbol": q.symbol, "window_sha256": r.window_sha256(), "last_bar_ts": d.last_bar_ts,
        "signals": d.signals, "regime": d.regime, "regime_from": "caller" if q.regime else "detector",
        "estimated": d.estimated, "tier": d.tier, "requested": d.requested, "reason": d.reason,
        "override": q.tier, "budget_ms": q.budget_ms, "family_id": d.family_id, "tier_sha256": tier.sha256,
        "target": a.target.name, "features": r.x.tolist(), "output": a.output.tolist(),
        "prediction": prediction, "latency_us": a.latency_us,
        "shadow": {name: out.tolist() for name, out in r.shadow.items()} if r.shadow else None,
    }
