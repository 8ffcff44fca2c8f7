"""`tiered serve` (and `python -m app`): serve the current family over HTTP with uvicorn.

    tiered serve [--models DIR] [--host HOST] [--port PORT] [--workers N] [--feed SPEC ...]
    tiered replay-log FILE... [--models DIR] [--json]     (app/audit.py)

Flags override TIERED_* environment variables, which override the defaults in `app/settings.py`;
with no flags at all the service is configured by the environment alone (the container runs exactly
SERVE_COMMAND). A store whose family cannot be served, or a feed that cannot be followed, stops the
command with one line naming the file or the feed and the problem. SIGTERM ends the live streams (SSE,
WebSocket), drains in-flight requests for up to TIERED_SHUTDOWN_GRACE_SECONDS, then the command exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

SERVE_COMMAND = ("tiered", "serve")
FACTORY = "app.main:create_app_from_env"


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the current family over HTTP",
                       description="Serve the family CURRENT points at. Flags override TIERED_* variables.")
    p.add_argument("--models", type=Path, default=None,
                   help="the store holding CURRENT (TIERED_MODELS_DIR, default models/store)")
    p.add_argument("--host", default=None, help="address to bind (TIERED_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (TIERED_PORT, default 8000)")
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
    from app.live import follower
    from app.registry import check_store
    from app.settings import Settings

    flags = {"models_dir": args.models, "host": args.host, "port": args.port, "workers": args.workers,
             "feeds": args.feed}
    flags = {name: value for name, value in flags.items() if value is not None}
    try:
        settings = Settings(**flags)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) or "settings"  # a rule between two settings names none
        print(f"tiered serve: {where}: {first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    try:
        check_store(settings.models_dir, settings.threshold_overrides())
    except FamilyRefused as e:
        print(f"tiered serve: {settings.models_dir}: {e.message}", file=sys.stderr)
        return 2
    try:
        asyncio.run(follower.check(settings))
    except ValueError as e:
        print(f"tiered serve: --feed: {e}", file=sys.stderr)
        return 2
    return _run(settings, flags)


def _run(settings: Any, flags: dict[str, Any]) -> int:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from app.main import create_app

    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["app"] = {"handlers": ["default"], "level": settings.log_level.upper(),
                                    "propagate": False}
    common: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_level": settings.log_level,
        "log_config": log_config, "access_log": settings.access_log, "lifespan": "on", "server_header": False,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }
    if settings.workers > 1:
        from app import multiproc

        # Workers sum their metrics through files in one directory, emptied for this run.
        default = Path(tempfile.gettempdir()) / f"tiered-metrics-{os.getpid()}"
        directory = multiproc.prepare(settings.metrics_dir or default)
        # Each worker process builds its own app from the environment, so the flags travel there too.
        for name, value in {**flags, "metrics_dir": directory}.items():
            os.environ[f"TIERED_{name.upper()}"] = ",".join(value) if isinstance(value, list) else str(value)
        try:
            uvicorn.run(FACTORY, factory=True, workers=settings.workers, **common)
        finally:
            if settings.metrics_dir is None:
                shutil.rmtree(directory, ignore_errors=True)
        return 0
    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # Live streams (SSE, WebSocket) never finish on their own: ended first, or the drain would wait
            # the whole grace period for them.
            if self.started:
                app.state.live.end_streams()
            await super().shutdown(sockets)

    app = create_app(settings)
    server = Server(uvicorn.Config(app, **common))
    # uvicorn drains, then re-raises the signal it caught to the previous handler; this one lets the
    # command end with exit code 0 after a graceful SIGTERM instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    return 0 if server.started else 3
