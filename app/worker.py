"""One worker process of `tiered serve`: the app over uvicorn on the supervisor's listening socket.

The supervisor (`app/supervisor.py`) starts `main` in a fresh interpreter (multiprocessing's spawn) with
a `Spec`: the settings it read, the family to load by its id (never "whatever CURRENT says now"), the
listening socket every worker accepts on, and the worker's end of the control channel. The worker
builds the app (`app/main.py`), whose lifespan loads that family and attaches the channel
(`app/control.py`), and serves until SIGTERM, which ends the live streams and drains in-flight requests
for up to TIERED_SHUTDOWN_GRACE_SECONDS. Exit code 3: the app did not start (the family failed to load).
"""

from __future__ import annotations

import copy
import signal
import socket
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from app.settings import Settings

STARTUP_FAILURE = 3


@dataclass(frozen=True)
class Spec:
    settings: Settings
    family_id: str
    sock: socket.socket
    conn: Connection


def log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging, with the app's own logger at the configured level (supervisor and workers)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["app"] = {"handlers": ["default"], "level": settings.log_level.upper(),
                                "propagate": False}
    return config


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn is told, besides the app and the socket: the HTTP protocol with this service's
    connection limits (`app/connections.py`), keep-alive, logging and the drain on SIGTERM."""
    from app.connections import Guarded

    return {"http": Guarded.with_limits(settings), "lifespan": "on", "log_level": settings.log_level,
            "log_config": log_config(settings), "access_log": settings.access_log, "server_header": False,
            "timeout_keep_alive": settings.keep_alive_seconds,
            "timeout_graceful_shutdown": settings.shutdown_grace_seconds}


def main(spec: Spec) -> None:
    import uvicorn

    from app.control import Channel
    from app.main import create_app

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # Live streams (SSE, WebSocket) never finish on their own: ended first, or the drain would wait
            # the whole grace period for them.
            if self.started:
                app.state.live.end_streams()
            await super().shutdown(sockets)

    control = Channel(spec.conn, spec.family_id)
    app = create_app(spec.settings, control)
    server = Server(uvicorn.Config(app, **uvicorn_options(spec.settings)))
    # uvicorn drains, then re-raises the signal it caught to the previous handler; these let the worker
    # exit 0 after a graceful stop instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    server.run(sockets=[spec.sock])
    sys.exit(0 if server.started else STARTUP_FAILURE)
