"""`tiered serve` (and `python -m app`): serve the current family over HTTP, from a supervisor and
TIERED_WORKERS worker processes running uvicorn (`app/supervisor.py`).

    tiered serve [--models DIR] [--host HOST] [--port PORT] [--grpc-port PORT] [--workers N] [--feed SPEC ...]
    tiered replay-log FILE... [--models DIR] [--json]     (app/audit.py)

Flags override TIERED_* environment variables, which override the defaults in `app/settings.py`;
with no flags at all the service is configured by the environment alone (the container runs exactly
SERVE_COMMAND). A store whose family cannot be served, a feed that cannot be followed, or an address that
cannot be bound stops the command with one line naming it (exit 2); no worker able to start at all,
exit 3. SIGTERM ends the live streams (SSE, WebSocket), drains in-flight requests for up to
TIERED_SHUTDOWN_GRACE_SECONDS, then the command exits 0; SIGHUP reloads CURRENT on every worker, as
POST /admin/reload does.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

SERVE_COMMAND = ("tiered", "serve")


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the current family over HTTP",
                       description="Serve the family CURRENT points at. Flags override TIERED_* variables.")
    p.add_argument("--models", type=Path, default=None,
                   help="the store holding CURRENT (TIERED_MODELS_DIR, default models/store)")
    p.add_argument("--host", default=None, help="address to bind (TIERED_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (TIERED_PORT, default 8000)")
    p.add_argument("--grpc-port", type=int, default=None,
                   help="the Open Inference Protocol over gRPC on this port (TIERED_GRPC_PORT, default off)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (TIERED_WORKERS, default 1)")
    p.add_argument("--feed", action="append", default=None, metavar="[NAME=]SPEC",
                   help="follow a symbol, repeatable: bybit:CATEGORY:SYMBOL:INTERVAL "
                        "(bybit:linear:BTCUSDT:1) or replay:PATH[:SPEED] (SPEED: bars/s, Nx real time, max); "
                        "TIERED_FEEDS, comma-separated")
    p.set_defaults(handler=serve)
    p = sub.add_parser("replay-log", help="recompute the decisions of a decision log; report mismatches",
                       description="Recompute every decision of the given decision log files (rotated ones "
                                   "too) from the families in the store; exit 1 on a mismatch, 2 when "
                                   "nothing could be read.")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE")
    p.add_argument("--models", type=Path, default=Path("models/store"),
                   help="the store holding the families the log names (default models/store)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=replay_log)


def replay_log(args: argparse.Namespace) -> int:
    from app import audit  # the service's stack, loaded only for this command

    return audit.run(args)


def serve(args: argparse.Namespace) -> int:
    # Imported here so that `tiered train` and `tiered market` never pay for the web stack.
    from app.errors import FamilyRefused
    from app.families import check_family
    from app.live import follower
    from app.settings import Settings

    flags = {"models_dir": args.models, "host": args.host, "port": args.port, "grpc_port": args.grpc_port,
             "workers": args.workers, "feeds": args.feed}
    flags = {name: value for name, value in flags.items() if value is not None}
    try:
        settings = Settings(**flags)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) or "settings"  # a rule between two settings names none
        print(f"tiered serve: {where}: {first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    try:
        family_id = check_family(settings.models_dir, None, settings.threshold_overrides()).family_id
    except FamilyRefused as e:
        print(f"tiered serve: {settings.models_dir}: {e.message}", file=sys.stderr)
        return 2
    try:
        asyncio.run(follower.check(settings))
    except ValueError as e:
        print(f"tiered serve: --feed: {e}", file=sys.stderr)
        return 2
    if settings.grpc_port is not None and (problem := _unbindable(settings.host, settings.grpc_port)):
        print(f"tiered serve: grpc_port: cannot listen on {settings.host}:{settings.grpc_port} ({problem}); "
              "choose a free port", file=sys.stderr)
        return 2
    return _run(settings, family_id)


def _unbindable(host: str, port: int) -> str | None:
    """Why the port cannot be bound now (another process holds it, say); checked before the long start."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # As the servers bind: a port whose old connections linger in TIME_WAIT is free for them.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        return e.strerror or str(e)
    return None


def _run(settings: Any, family_id: str) -> int:
    import logging.config

    from app.supervisor import Supervisor
    from app.worker import log_config

    logging.config.dictConfig(log_config(settings))
    try:
        return Supervisor(settings, family_id).run()
    except OSError as e:  # the address is taken, or not this machine's
        where = f"{settings.host}:{settings.port}"
        print(f"tiered serve: cannot listen on {where}: {e.strerror}", file=sys.stderr)
        return 2
