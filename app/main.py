"""The FastAPI application: `create_app(settings, control)` builds a fresh app; its lifespan loads the
family and runs the worker's background work.

Nothing is loaded at import. The lifespan loads the family the control names (under `tiered serve`,
the family the supervisor pinned; alone, the one CURRENT points at) into `app.state` (registry, data
plane, the Open Inference Protocol's models, counters) and refuses to start when the family is
unusable; a family with some broken tiers starts degraded. With several workers, the counters live in
the multiprocess directory (`app/multiproc.py`), which the supervisor prepared before the workers
started. The request decoders are built here from the settings, so the OpenAPI document states the
caps that are enforced.

Per-worker background work is started in the lifespan once the family is loaded, each as an async
context manager entered on the `worker_tasks` stack, and stopped in reverse order when the worker
stops (after uvicorn has drained the requests): the supervisor's control channel; the gRPC server
(`app/grpc_server.py`, only with TIERED_GRPC_PORT set; every worker binds the port, SO_REUSEPORT
shares it); then the live symbols (`app/live`: each worker follows every feed), which stop first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import errors, grpc_server, oip, wire
from app.control import Control, Local
from app.dataplane import DataPlane, RangePolicy
from app.decisions import DecisionLog
from app.head import HeadAsGet
from app.inference import Inference
from app.limits import BodyLimit
from app.live import views
from app.live.follower import Live
from app.metrics import Metrics
from app.quality import Quality
from app.registry import Registry
from app.routed import RoutedModel
from app.routes import admin, bench, console, health, predict, symbols, tiers, v2, ws
from app.settings import Settings

log = logging.getLogger("app")

DESCRIPTION = """\
Predicts the next bar's return for a market window with a family of distilled models (M0 teacher →
M3 tiny), choosing the tier by market regime: the smallest tier good enough for the window's regime, by
the family's regime → tier map (`GET /tiers` shows it and the validation evidence it was learned from).
Every answer says which tier answered and why (`regime`, `override`, `budget` or `fallback`).
Errors answer `{"error": {"code", "message", "field"}}`; under `/v2` the Open Inference Protocol's
`{"error": "..."}`.
"""


def create_app(settings: Settings | None = None, control: Control | None = None) -> FastAPI:
    """`control`: how this worker changes family (`app/control.py`); default, on its own (`Local`)."""
    settings = settings or Settings()
    control = control or Local()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = Registry(settings.models_dir, settings.ort_threads, settings.threshold_overrides())
        family = registry.load(control.family_id)
        for name, problem in family.problems.items():
            log.warning("tier %s is unavailable: %s", name, problem)
        log.info("serving family %s: tiers %s available", family.family_id, family.available)
        metrics = Metrics(settings.metrics_dir if settings.workers > 1 else None)
        metrics.serving(family)
        app.state.registry = registry
        app.state.metrics = metrics
        plane = app.state.plane = DataPlane(registry, metrics, RangePolicy(settings.out_of_range == "refuse",
                                                                           settings.range_margin),
                                            shadow_rate=settings.shadow_rate)
        limits = app.state.codec.limits
        routed = RoutedModel(plane, limits, app.state.codec.now_ms)
        models = app.state.inference = Inference(plane, limits, routed)
        decision_log = _decision_log(settings, plane, metrics)
        app.state.quality = quality = Quality(settings.quality_window, metrics.registry)
        plane.followup.listen(quality.on_served, tracked_only=True)
        metrics.before_scrape(quality.sync)
        if decision_log is not None:
            quality.listen(decision_log.on_realised)
        app.state.control = control
        async with AsyncExitStack() as worker_tasks:
            if decision_log is not None:  # last: the records of the last answers, then the file
                worker_tasks.callback(decision_log.close, settings.shutdown_grace_seconds)
                worker_tasks.callback(plane.followup.run)
            await worker_tasks.enter_async_context(control.attached(registry, metrics))
            await worker_tasks.enter_async_context(grpc_server.serving(settings, models))
            app.state.live = await _follow(settings, plane, metrics, quality)
            worker_tasks.push_async_callback(app.state.live.stop)
            control.ready(family)
            yield

    # No redirects for a trailing slash: Starlette builds them from the Host header, so a client could
    # make the service point elsewhere (`GET /tiers/` with `Host: evil.example`); such paths are 404s.
    app = FastAPI(title="tiered", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  redirect_slashes=False)
    # Decoders built from the settings: their caps are the configured limits, in the OpenAPI document too.
    app.state.settings = settings
    app.state.codec = wire.Codec(wire.Limits(settings.max_candles, settings.max_batch_items))
    app.state.oip_types = oip.request_types(oip.max_values(settings.max_batch_items, settings.max_candles))
    _document(app, app.state.codec, app.state.oip_types)
    if settings.bench_routes:  # first, so the baseline pays no more route matching than /predict
        app.include_router(bench.router)
    for module in (predict, tiers, health, admin, v2, symbols, ws, console):
        app.include_router(module.router)
    app.mount(console.STATIC, console.static(), name="console")
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, gap_seconds=settings.body_gap_seconds,
                       total_seconds=settings.body_timeout_seconds)
    app.add_middleware(HeadAsGet)
    if settings.cors_origins:  # added last, so it is outermost and also decorates 413 answers
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _decision_log(settings: Settings, plane: DataPlane, metrics: Metrics) -> DecisionLog | None:
    """The decision log, started and listening to the data plane's answers, when the settings ask for one."""
    if settings.decision_log is None:
        return None
    decision_log = DecisionLog(settings.decision_log, metrics.registry, settings.decision_log_max_bytes,
                               settings.decision_log_backups, settings.decision_log_queue)
    plane.followup.listen(decision_log.on_served)  # first: a decision's line precedes its outcome's
    decision_log.start()
    return decision_log


async def _follow(settings: Settings, plane: DataPlane, metrics: Metrics, quality: Quality) -> Live:
    """This worker's live symbols, started: every feed of the settings, predicting through `plane`."""
    live = await Live.open(settings, plane, metrics, quality)
    await live.start()
    return live


def _document(app: FastAPI, codec: wire.Codec, oip_types: oip.RequestTypes) -> None:
    """Adds the msgspec request and response types, which routes refer to, to FastAPI's components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            found = {**wire.components(codec), **oip.components(oip_types), **views.components()}
            schema.setdefault("components", {}).setdefault("schemas", {}).update(found)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
