"""The HTTP connection: uvicorn's httptools protocol with the limits a server facing hostile clients
needs and neither uvicorn nor httptools has (uvicorn's h11 parser caps a head at 16 KiB but serves this
app about a quarter slower; neither has a timeout before a request's head is complete):

  * a request's head (request line and headers) must be complete within TIERED_HEADER_TIMEOUT_SECONDS
    of the connection opening, or of its first byte on a kept-alive connection: a silent client is
    closed, one that started a request is answered 408 and closed;
  * a head larger than TIERED_MAX_HEADER_BYTES is answered 431 before the parser buffers it;
  * a worker holds at most TIERED_MAX_CONNECTIONS connections, and never more than its open-file limit
    allows. At the limit a new connection closes the connection idle longest among those with no
    request in progress (kept alive after an answer, or open with nothing sent yet), as nginx reuses
    its connections; when every one is busy, the new one is answered 503 and closed.
The time between requests is uvicorn's keep-alive timeout (TIERED_KEEP_ALIVE_SECONDS); the body's
timeouts are the app's, where the body is read (`app/limits.py`).

The head is counted from the start of each read in which it is being received, so a pipelined request
whose head begins inside a read (after the previous request's body) may exceed the limit by at most one
read (256 KiB), never without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.errors import error_content
from app.settings import Settings

log = logging.getLogger("app.connections")

RESERVED_FILES = 64  # open files a worker needs besides connections: sockets, pipes, metrics, logs
HEAD_END = b"\r\n\r\n"
# After a refusal the connection is half-closed and what the client still sends is read and dropped for
# a moment: closing a socket with unread data makes the kernel reset the connection, which would destroy
# the refusal before the client reads it (nginx's lingering close, shorter).
LINGER_SECONDS, LINGER_BYTES = 2.0, 64 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    header_seconds: float
    header_bytes: int
    connections: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.header_timeout_seconds, settings.max_header_bytes,
                   min(settings.max_connections, open_file_limit() - RESERVED_FILES))


def open_file_limit() -> int:
    """The open-file limit, raised to the hard limit first (as Go's runtime does): each connection is a
    file, and a worker that runs out of them can accept nobody, health checks included."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Guarded(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]

    @classmethod
    def with_limits(cls, settings: Settings) -> type[Guarded]:
        limits = ConnectionLimits.of(settings)
        if limits.connections < settings.max_connections:
            log.warning("at most %d connections per worker, not %d: the open-file limit allows no more",
                        limits.connections, settings.max_connections)
        return type("Guarded", (cls,), {"limits": limits})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head: int | None = 0  # bytes of the request head so far; None once it is complete
        self._tail = b""  # the last bytes of the head so far: its end may straddle two reads
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_since = self.loop.time()
        self._lingering: int | None = None  # bytes dropped since a refusal
        if len(self.connections) > self.limits.connections and not self._evict():
            self._refuse(503, "service_unavailable", "too many connections; try again shortly")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.close()
            return
        if self._head is not None:
            if self._head_timer is None:  # the first byte of a request on a kept-alive connection
                self._arm_head_timer()
            if not self._head_fits(data):
                self._refuse(431, "request_header_fields_too_large", "the request line and headers are over "
                             f"{self.limits.header_bytes} bytes; send fewer or shorter headers, or raise "
                             "TIERED_MAX_HEADER_BYTES")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head = None
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head, self._tail = 0, b""  # the next byte starts the next request's head

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()

    def _head_fits(self, data: bytes) -> bool:
        assert self._head is not None
        room = self.limits.header_bytes - self._head
        if HEAD_END in self._tail + data[:3] or data.find(HEAD_END, 0, max(room, 0)) != -1:
            return True  # the head ends in this read, within the limit
        self._head += len(data)
        self._tail = data[-3:]
        return self._head <= self.limits.header_bytes

    def _idle(self) -> bool:
        """No request in progress: nothing of the next one received, no answer pending."""
        return (self._head == 0 and not self._tail and not self.pipeline
                and (self.cycle is None or self.cycle.response_complete))

    def _evict(self) -> bool:
        """Close the connection idle longest, other than this one; whether there was one."""
        idle = [c for c in self.connections if c is not self and isinstance(c, Guarded) and c._idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest.transport.close()
        return True

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_seconds, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined head waits behind an answer in progress: not its fault
        elif self._head or self._tail:
            self._refuse(408, "request_timeout", f"the request's headers did not arrive within "
                         f"{self.limits.header_seconds:g} s (TIERED_HEADER_TIMEOUT_SECONDS)")
        else:
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        body = json.dumps(error_content("", code, message), separators=(",", ":")).encode()
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body]))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._lingering = 0
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
