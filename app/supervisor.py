"""`tiered serve`'s process model: one supervisor and TIERED_WORKERS worker processes serving one family.

The supervisor binds the listening socket once; every worker accepts on it (the kernel hands each new
connection to one of them). It pins the family at start (the one CURRENT points at then) and starts
each worker with that family's id, so that a worker started later (a crash, the OOM killer) loads the
family its siblings serve, never whatever CURRENT says at that moment. It owns the Prometheus
multiprocess directory (`app/multiproc.py`): prepared before the first worker, each dead worker marked
when it is reaped, removed at the end.

  * A reload (`POST /admin/reload` on any worker, or SIGHUP to the supervisor) reaches every worker and
    answers only when all of them serve the new family, or says which did not and why; a family is
    swapped in only once every worker has verified it (the two phases are in `app/control.py`). No
    worker is started while a reload runs, and a reload waits for workers still starting.
  * A worker that exits is started again on the pinned family. One that cannot start is retried with
    a growing pause (1 s to 30 s) while the others serve on; only when no worker has ever started does
    the command give up (exit 3).
  * SIGTERM or SIGINT: the supervisor closes its copy of the socket and passes SIGTERM on; each worker
    stops accepting, drains in-flight requests for up to TIERED_SHUTDOWN_GRACE_SECONDS and exits; the
    command exits 0. A worker still there a few seconds later is killed.

Measured before choosing (2 workers, /predict under wrk, BENCHMARKS.md "Process model"): uvicorn's own
supervisor, gunicorn with uvicorn workers and this one serve alike, since the worker is the same
uvicorn; granian was slower on this app; and all three ready-made ones stop every worker when a
restarted one fails to start, none pins a family or reloads all workers.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from app import multiproc, worker
from app.control import Outcome, WorkerState
from app.errors import FamilyRefused
from app.families import check_family
from app.settings import Settings

log = logging.getLogger("app.supervisor")

BACKLOG = 2048
START_SECONDS = 300.0  # a worker that has not loaded its family by then is stuck: killed, started again
RELOAD_SECONDS = 300.0  # a worker that has not answered a reload step by then is counted as refusing
STOP_SLACK_SECONDS = 5.0  # after the drain: interpreter and onnxruntime teardown
CRASH_LOOP_SECONDS = 10.0  # a worker that exits sooner after it started serving is retried with a pause
PAUSES = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # before the n-th start in a row that follows a failure


@dataclass
class Worker:
    slot: int
    process: BaseProcess
    conn: Connection
    family_id: str
    state: Literal["starting", "serving"] = "starting"
    since: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


@dataclass
class Reload:
    seq: int
    target: str
    previous: str
    requesters: list[tuple[Connection | None, int]]  # (the asking worker's pipe or None: SIGHUP, request id)
    waiting: set[int]  # slots that have not answered this phase
    deadline: float
    problems: dict[int, str] = field(default_factory=dict)  # pid → why it refused
    committing: bool = False


class Supervisor:
    def __init__(self, settings: Settings, family_id: str) -> None:
        self.settings, self.pinned = settings, family_id
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, Worker] = {}
        self.retry_at: dict[int, float] = {}  # slot → when it starts again
        self.failures: dict[int, int] = {}  # slot → failed starts in a row
        self.requests: list[tuple[Connection | None, int]] = []  # reloads waiting their turn
        self.reload: Reload | None = None
        self.seq = itertools.count(1)
        self.stopping = False
        self.served = False  # some worker has served: from then on a failing slot is retried forever
        self.socket: socket.socket | None = None
        self.metrics_dir: Path | None = None

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (0), or until no worker could ever start (3)."""
        s = self.settings
        self.socket = socket.create_server((s.host, s.port), backlog=BACKLOG)
        if s.workers > 1:
            default = Path(tempfile.gettempdir()) / f"tiered-metrics-{os.getpid()}"
            self.metrics_dir = multiproc.prepare(s.metrics_dir or default)
            self.settings = s.model_copy(update={"metrics_dir": self.metrics_dir})  # what workers are told
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        previous = _handle_signals(self, wake_write)
        log.info("supervisor %d: %d worker(s) on %s:%d, family %s", os.getpid(), s.workers, s.host, s.port,
                 self.pinned)
        try:
            for slot in range(s.workers):
                self._start(slot)
            return self._loop(wake_read)
        finally:
            self._stop_all()
            _restore_signals(previous)
            wake_read.close()
            wake_write.close()
            if self.metrics_dir is not None and s.metrics_dir is None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)

    # -- the loop -----------------------------------------------------------------------------------

    def _loop(self, wake: socket.socket) -> int:
        while not self.stopping:
            self._start_due()
            self._begin_reload()
            waitables: list[Any] = [wake]
            for w in self.workers.values():
                waitables += [w.conn, w.process.sentinel]
            ready = wait(waitables, timeout=self._timeout())
            if wake in ready:
                _drain(wake)
            for w in list(self.workers.values()):
                if w.conn in ready:
                    self._receive(w)
            for w in list(self.workers.values()):
                if w.process.sentinel in ready:
                    self._reap(w)
            self._check_deadlines()
            if self._gave_up():
                log.error("no worker could start family %s; stopping", self.pinned)
                return worker.STARTUP_FAILURE
        return 0

    def _timeout(self) -> float:
        now = time.monotonic()
        return max(0.01, min([1.0, *(at - now for at in self.retry_at.values())]))

    def _gave_up(self) -> bool:
        return (not self.served and not self.workers
                and all(self.failures.get(slot, 0) > 0 for slot in range(self.settings.workers)))

    # -- workers ------------------------------------------------------------------------------------

    def _start(self, slot: int) -> None:
        assert self.socket is not None
        ours, theirs = self.context.Pipe()
        spec = worker.Spec(self.settings, self.pinned, self.socket, theirs)
        process = self.context.Process(target=worker.main, args=(spec,), name=f"tiered-worker-{slot}")
        process.start()
        theirs.close()
        w = self.workers[slot] = Worker(slot, process, ours, self.pinned)
        log.info("worker %d (pid %d) starting on family %s", slot, w.pid, self.pinned)

    def _start_due(self) -> None:
        if self.reload is not None or self.stopping:
            return  # a worker starting now would load the family the reload is replacing
        now = time.monotonic()
        for slot, at in sorted(self.retry_at.items()):
            if at <= now:
                del self.retry_at[slot]
                self._start(slot)

    def _receive(self, w: Worker) -> None:
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            pass  # it exited; its sentinel says so

    def _handle(self, w: Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            w.state, w.since = "serving", time.monotonic()
            self.served = True
            self.failures.pop(w.slot, None)
            log.info("worker %d (pid %d) serves family %s", w.slot, w.pid, message[1])
        elif kind == "reload":
            self.requests.append((w.conn, message[1]))
        elif kind in ("prepared", "committed"):
            r = self.reload
            if r is None or message[1] != r.seq or w.slot not in r.waiting:
                return  # an answer to a reload that already ended (it timed out)
            r.waiting.discard(w.slot)
            if kind == "prepared" and message[2] is not None:
                r.problems[w.pid] = message[2]
            self._advance()

    def _reap(self, w: Worker) -> None:
        w.process.join()
        del self.workers[w.slot]
        w.conn.close()
        if self.metrics_dir is not None:
            multiproc.mark_dead(self.metrics_dir, w.pid)
        r = self.reload
        if r is not None and w.slot in r.waiting:
            r.waiting.discard(w.slot)
            if not r.committing:
                r.problems[w.pid] = f"worker {w.pid} exited during the reload"
            self._advance()
        if self.stopping:
            return
        code = w.process.exitcode
        if w.state == "starting" or time.monotonic() - w.since < CRASH_LOOP_SECONDS:
            failures = self.failures[w.slot] = self.failures.get(w.slot, 0) + 1
            pause = PAUSES[min(failures, len(PAUSES)) - 1]
            what = "could not start" if w.state == "starting" else "exited right after starting"
            log.error("worker %d (pid %d) %s on family %s (exit code %s); the other workers serve on; "
                      "trying again in %.0f s", w.slot, w.pid, what, w.family_id, code, pause)
        else:
            pause = 0.0
            log.warning("worker %d (pid %d) exited (exit code %s); starting it again on family %s",
                        w.slot, w.pid, code, self.pinned)
        self.retry_at[w.slot] = time.monotonic() + pause

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for w in self.workers.values():
            if w.state == "starting" and now - w.since > START_SECONDS:
                log.error("worker %d (pid %d) did not start within %.0f s; killing it", w.slot, w.pid,
                          START_SECONDS)
                w.process.kill()
        r = self.reload
        if r is not None and now > r.deadline and r.waiting:
            for slot in r.waiting:
                late = self.workers[slot]
                if r.committing:  # a swap that never finished: the worker is wedged; it restarts pinned
                    log.error("worker %d (pid %d) did not swap to %s in time; killing it", slot, late.pid,
                              r.target)
                    late.process.kill()
                else:
                    r.problems[late.pid] = f"worker {late.pid} did not answer within {RELOAD_SECONDS:.0f} s"
            r.waiting.clear()
            self._advance()

    # -- reloads ------------------------------------------------------------------------------------

    def _begin_reload(self) -> None:
        if self.reload is not None or not self.requests or self.stopping:
            return
        if any(w.state == "starting" for w in self.workers.values()):
            return  # once they serve (or fail), every worker takes part
        requesters, self.requests = self.requests, []
        previous = self.pinned
        try:
            s = self.settings
            target = check_family(s.models_dir, None, s.threshold_overrides()).family_id
        except FamilyRefused as e:
            log.error("reload refused: %s", e.message)
            self._answer(requesters, Outcome(previous, previous, e.message, self._states()))
            return
        serving = [w for w in self.workers.values() if w.state == "serving"]
        if not serving:  # nobody to ask: every worker starts on the new family from now on
            self.pinned = target
            self.retry_at = dict.fromkeys(self.retry_at, time.monotonic())
            self._answer(requesters, Outcome(target, previous, None, self._states()))
            return
        seq = next(self.seq)
        self.reload = Reload(seq, target, previous, requesters, {w.slot for w in serving},
                             time.monotonic() + RELOAD_SECONDS)
        log.info("reload %d: every worker prepares family %s", seq, target)
        for w in serving:
            _send(w.conn, ("prepare", seq, target))

    def _advance(self) -> None:
        r = self.reload
        if r is None or r.waiting:
            return
        serving = [w for w in self.workers.values() if w.state == "serving"]
        if r.committing:
            self._finish(None)
        elif r.problems:
            for w in serving:
                _send(w.conn, ("abort", r.seq))
            self._finish(_refusal(r.problems))
        else:  # every worker verified the family: from here on it is the family, for restarts too
            self.pinned = r.target
            r.committing, r.waiting = True, {w.slot for w in serving}
            r.deadline = time.monotonic() + RELOAD_SECONDS
            for w in serving:
                _send(w.conn, ("commit", r.seq))
            self._advance()  # no worker left to ask (all exited meanwhile): done

    def _finish(self, refused: str | None) -> None:
        r = self.reload
        assert r is not None
        self.reload = None
        family_id = r.previous if refused else r.target
        if refused:
            log.error("reload %d refused; family %s serves on: %s", r.seq, family_id, refused)
        else:
            log.info("reload %d: every worker serves family %s", r.seq, family_id)
        self._answer(r.requesters, Outcome(family_id, r.previous, refused, self._states()))

    def _answer(self, requesters: list[tuple[Connection | None, int]], outcome: Outcome) -> None:
        for conn, rid in requesters:
            if conn is not None and not conn.closed:
                _send(conn, ("reloaded", rid, outcome))

    def _states(self) -> tuple[WorkerState, ...]:
        states = [WorkerState(w.pid, w.family_id if w.state == "starting" else self.pinned, w.state)
                  for w in self.workers.values()]
        states += [WorkerState(None, None, "down") for _ in self.retry_at]
        return tuple(states)

    # -- stopping -----------------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping = True

    def _stop_all(self) -> None:
        self.stopping = True
        if self.socket is not None:
            self.socket.close()  # once every worker has closed its copy too, new connections are refused
        for w in self.workers.values():
            if w.process.exitcode is None:
                os.kill(w.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds + STOP_SLACK_SECONDS
        for w in list(self.workers.values()):
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.exitcode is None:
                log.error("worker %d (pid %d) did not stop in time; killing it", w.slot, w.pid)
                w.process.kill()
                w.process.join()
            self._reap(w)


def _send(conn: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, EOFError):  # the worker is gone; its sentinel says so
        conn.send(message)


def _refusal(problems: dict[int, str]) -> str:
    """One reason when every worker gave the same (the usual case), else each worker's."""
    reasons = set(problems.values())
    if len(reasons) == 1:
        return reasons.pop()
    return "; ".join(f"worker {pid}: {problem}" for pid, problem in sorted(problems.items()))


def _drain(wake: socket.socket) -> None:
    try:
        while wake.recv(512):
            pass
    except BlockingIOError:
        pass


def _handle_signals(supervisor: Supervisor, wake: socket.socket) -> dict[int, Any]:
    """SIGTERM and SIGINT stop, SIGHUP reloads; each wakes the loop through `wake`."""
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                                       signal.SIGHUP)}
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stop())
    signal.signal(signal.SIGHUP, lambda *_: supervisor.requests.append((None, 0)))
    previous[-1] = signal.set_wakeup_fd(wake.fileno())
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    signal.set_wakeup_fd(previous.pop(-1))
    for sig, handler in previous.items():
        signal.signal(sig, handler)
