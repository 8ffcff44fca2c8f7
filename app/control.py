"""How a worker changes family: on its own (`Local`), or with every sibling at once under the supervisor
(`Channel`, the worker's end of the control channel; the other end is `app/supervisor.py`).

`POST /admin/reload` calls `control.reload()` and answers with the `Outcome`. Under the supervisor, a
reload is two-phase across the workers, so that they never disagree for longer than a reference swap:

    worker A  ── reload ──▶ supervisor       (A took the admin request)
    supervisor ── prepare F ──▶ every serving worker: load F by its id, verify every tier, keep it aside
    every worker ── prepared (or the reason it refused F) ──▶ supervisor
    all prepared:  supervisor pins F ── commit ──▶ every worker: swap F in ── committed ──▶ supervisor
    any refused:   supervisor ── abort ──▶ every worker: drop F; the old family serves on
    supervisor ── reloaded (the outcome, naming any worker that refused and why) ──▶ worker A

Messages are tuples over a `multiprocessing` pipe, one pipe per worker. The worker reads its end in a
thread (loading a family takes seconds and must not stall the event loop); the swap itself runs on the
event loop. When the pipe breaks, the supervisor is gone: the worker stops itself (SIGTERM, so it drains)
rather than serve on unsupervised.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Literal

import anyio

from app.errors import FamilyRefused

if TYPE_CHECKING:  # the supervisor imports the messages below without loading onnxruntime
    from app.metrics import Metrics
    from app.registry import Family, Registry

log = logging.getLogger("app.control")

State = Literal["serving", "starting", "down"]


@dataclass(frozen=True)
class WorkerState:
    pid: int | None  # None: down, waiting to be started again
    family_id: str | None
    state: State


@dataclass(frozen=True)
class Outcome:
    """What a reload did: the family every serving worker serves now, or why the new one was refused."""

    family_id: str  # serving now: the new family, or the old one when refused
    previous_family_id: str
    refused: str | None  # None: every serving worker swapped to family_id
    workers: tuple[WorkerState, ...]


class Control:
    """The control of the family a worker serves: which one to load at startup, and reloads."""

    family_id: str | None = None  # the family the lifespan loads; None: the one CURRENT points at

    @asynccontextmanager
    async def attached(self, registry: Registry, metrics: Metrics) -> AsyncIterator[None]:
        """Runs for the worker's life, from a loaded family to shutdown."""
        self.registry, self.metrics = registry, metrics
        yield

    def ready(self, family: Family) -> None:
        """The lifespan loaded `family` and the worker is about to serve it."""

    async def reload(self) -> Outcome:
        raise NotImplementedError


class Local(Control):
    """One process serving alone (the app in tests, or embedded): a reload reloads this registry."""

    async def reload(self) -> Outcome:
        previous = self.registry.family.family_id
        try:
            # Loading sessions takes a while; a worker thread keeps the event loop serving meanwhile.
            family = await anyio.to_thread.run_sync(self.registry.reload)
        except FamilyRefused as e:
            return Outcome(previous, previous, e.message, (self._state(),))
        self.metrics.serving(family)
        return Outcome(family.family_id, previous, None, (self._state(),))

    def _state(self) -> WorkerState:
        return WorkerState(os.getpid(), self.registry.family.family_id, "serving")


class Channel(Control):
    """The worker's end of the supervisor's control channel."""

    def __init__(self, conn: Connection, family_id: str) -> None:
        self.conn, self.family_id = conn, family_id
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Outcome]] = {}
        self._prepared: tuple[int, Family] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    @asynccontextmanager
    async def attached(self, registry: Registry, metrics: Metrics) -> AsyncIterator[None]:
        self.registry, self.metrics = registry, metrics
        self._loop = asyncio.get_running_loop()
        reader = threading.Thread(target=self._read, name="control-channel", daemon=True)
        reader.start()
        try:
            yield
        finally:
            self._stopping = True  # a broken pipe from here on is our own shutdown, not the supervisor's

    def ready(self, family: Family) -> None:
        self.send(("ready", family.family_id))

    async def reload(self) -> Outcome:
        assert self._loop is not None, "reload runs after the lifespan attached the channel"
        rid = next(self._ids)
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._waiting[rid] = future
        try:
            self.send(("reload", rid))
            return await future
        finally:
            self._waiting.pop(rid, None)

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:  # the event loop and the reader thread both send
            self.conn.send(message)

    def _read(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                if not self._stopping:
                    log.error("the supervisor is gone; this worker stops")
                    os.kill(os.getpid(), signal.SIGTERM)
                return
            try:
                self._handle(message)
            except (EOFError, OSError):
                return  # the pipe broke while answering: the next recv says why

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "prepare":
            _, seq, family_id = message
            self.send(("prepared", seq, self._prepare(seq, family_id)))
        elif kind == "commit":
            _, seq = message
            if self._prepared is not None and self._prepared[0] == seq:
                family = self._prepared[1]
                assert self._loop is not None
                # The swap runs on the event loop, between two requests, like any other state change.
                done = asyncio.run_coroutine_threadsafe(self._commit(family), self._loop)
                done.result()
            self._prepared = None
            self.send(("committed", seq))
        elif kind == "abort":
            self._prepared = None
        elif kind == "reloaded":
            _, rid, outcome = message
            future = self._waiting.get(rid)
            if future is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(_settle, future, outcome)

    def _prepare(self, seq: int, family_id: str) -> str | None:
        """Loads and verifies `family_id` aside; the reason it was refused, or None."""
        self._prepared = None
        try:
            self._prepared = (seq, self.registry.prepare(family_id))
        except FamilyRefused as e:
            return e.message
        except Exception as e:  # anything else a load can raise must not kill the channel
            log.exception("preparing family %s failed", family_id)
            return f"loading family {family_id} failed: {type(e).__name__}"
        return None

    async def _commit(self, family: Family) -> None:
        self.registry.commit(family)
        self.metrics.serving(family)


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
