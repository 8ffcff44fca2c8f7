"""What happens to answers after they are sent: shadow runs, then whoever listens (the decision log, a
followed symbol's realised quality).

    followup = Followup(shadow, limit=10_000)
    followup.listen(decision_log.on_served)
    followup.wanted(tracked)          # does an answer need a record at all? (shadowed, logged, tracked)
    followup.add(Served(...))         # from the data plane, as it answers

A `Served` record is one answer with its feature row and the family that gave it. Records added while a
call is answered are run together two turns of the event loop later: the answers' futures are resolved,
and their callers' tasks woken, in between, so every response of the batch has been handed to its
transport before any shadow run or listener takes the loop (outside a running loop, as in a benchmark
computing offline, they run at once). At most `limit` records wait; more are dropped and counted
(`tiered_followup_dropped_total`), never queued without bound behind a loop that cannot keep up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from app import shadow as shadows
from app.registry import Family
from app.shadow import Shadow

if TYPE_CHECKING:  # the data plane imports this module
    from app.dataplane import Answer, Query

log = logging.getLogger("app.served")
Listener = Callable[[list["Served"]], None]


@dataclass(eq=False)
class Served:
    answer: Answer
    query: Query
    x: np.ndarray  # (F,) float32: the features the tier ran on
    family: Family
    shadowed: bool  # sampled for shadow scoring: every larger tier runs on x
    everywhere: bool = False  # a followed symbol's bar: every other tier runs on x
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    shadow: dict[str, np.ndarray] = field(default_factory=dict)  # tier → its output row on x

    def shadow_tiers(self) -> list[str]:
        routed = self.answer.decision.tier
        if self.everywhere:
            return [name for name in self.family.available if name != routed]
        return shadows.larger(self.family, routed) if self.shadowed else []

    def window_sha256(self) -> str:
        """sha256 of the window's candles as sent: the (7, n) float64 array (ts, open, high, low, close,
        volume, taker_buy_volume; NaN where not given), oldest bar first, C order."""
        return hashlib.sha256(np.ascontiguousarray(self.query.window.candles).tobytes()).hexdigest()


class Followup:
    def __init__(self, shadow: Shadow, registry: CollectorRegistry, limit: int = 10_000) -> None:
        self.shadow, self.limit = shadow, limit
        self.listeners: list[Listener] = []
        self._everything = False  # some listener takes every answer (not only followed symbols')
        self._pending: list[Served] = []
        self._scheduled = False
        try:  # the loop that runs the records; none when built outside one (a script, a test): run at once
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self.dropped = Counter("tiered_followup_dropped", "Answers whose shadow run and log line were "
                               "skipped because too many were waiting.", registry=registry)

    def listen(self, listener: Listener, tracked_only: bool = False) -> None:
        """`listener(records)` after each batch's shadow run; `tracked_only`: it reads only followed
        symbols' records, so other answers need none for it."""
        self.listeners.append(listener)
        self._everything = self._everything or not tracked_only

    def wanted(self, tracked: bool) -> bool:
        """Whether an answer needs a record even when it is not sampled for the shadow."""
        return tracked or self._everything

    def add(self, record: Served) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None and self._loop is not None and self._loop.is_running():
            # From a worker thread (a large /predict/batch is served in the thread pool): handed to the
            # loop, so that every record is queued, shadowed and logged there, off that request's path.
            self._loop.call_soon_threadsafe(self.add, record)
            return
        if len(self._pending) >= self.limit:
            self.dropped.inc()
            return
        self._pending.append(record)
        if self._scheduled:
            return
        if loop is None:
            self.run()
            return
        self._scheduled = True
        # Two hops: the answers' futures resolve after this call returns, and the tasks they wake run in
        # the next turn; this runs in the turn after that.
        loop.call_soon(loop.call_soon, self.run)

    def run(self) -> None:
        self._scheduled = False
        records, self._pending = self._pending, []
        if not records:
            return
        self.shadow.run(records)
        for listener in self.listeners:
            try:
                listener(records)
            except Exception:  # a listener's bug must not stop the others, nor the next batch
                log.exception("a listener of served answers failed")
