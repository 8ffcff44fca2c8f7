"""The FastAPI application: `create_app(settings)` builds a fresh app; its lifespan loads the family.

Nothing is loaded at import. The lifespan loads the family CURRENT points at into `app.state`
(registry, data plane, counters) and refuses to start when the family is unusable; a family with some
broken tiers starts degraded. With several workers, the counters live in the multiprocess directory
(`app/multiproc.py`), which the command prepared before the workers started. The live symbols
(`app/live`) start after the family and stop first: two lines below, `_follow` and `live.stop()`,
are all the process model needs to know about them (each worker follows every feed). `create_app_from_env`
is the factory uvicorn imports when it runs several worker processes. The request decoders are built
here from the settings, so the OpenAPI document states the caps that are enforced.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import errors, multiproc, oip, wire
from app.dataplane import DataPlane
from app.decisions import DecisionLog
from app.limits import BodyLimit
from app.live import views
from app.live.follower import Live
from app.metrics import Metrics
from app.quality import Quality
from app.registry import Registry
from app.routes import admin, bench, console, health, predict, symbols, tiers, v2, ws
from app.settings import Settings

log = logging.getLogger("app")

DESCRIPTION = """\
Predicts the next bar's return for a market window with a family of distilled models (M0 teacher →
M3 tiny), choosing the tier by market regime: calm → M3, normal → M2, volatile → M1, crisis → M0.
Every answer says which tier answered and why (`regime`, `override`, `budget` or `fallback`).
Errors answer `{"error": {"code", "message", "field"}}`; under `/v2` the Open Inference Protocol's
`{"error": "..."}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = Registry(settings.models_dir, settings.ort_threads, settings.threshold_overrides())
        family = registry.load()
        for name, problem in family.problems.items():
            log.warning("tier %s is unavailable: %s", name, problem)
        log.info("serving family %s: tiers %s available", family.family_id, family.available)
        shared = settings.metrics_dir if settings.workers > 1 else None
        if shared is not None:
            multiproc.forget_dead_workers(shared)
        metrics = Metrics(shared)
        metrics.serving(family)
        app.state.registry = registry
        app.state.metrics = metrics
        app.state.plane = plane = DataPlane(registry, metrics, settings.shadow_rate)
        decision_log = _decision_log(settings, plane, metrics)
        app.state.quality = quality = Quality(settings.quality_window, metrics.registry)
        plane.followup.listen(quality.on_served, tracked_only=True)
        metrics.before_scrape(quality.sync)
        if decision_log is not None:
            quality.listen(decision_log.on_realised)
        app.state.live = await _follow(settings, plane, metrics, quality)
        yield
        await app.state.live.stop()
        if decision_log is not None:
            plane.followup.run()  # the records of the last answers
            decision_log.close(settings.shutdown_grace_seconds)
        if shared is not None:
            multiproc.leave(shared)

    app = FastAPI(title="tiered", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    # Decoders built from the settings: their caps are the configured limits, in the OpenAPI document too.
    app.state.settings = settings
    app.state.codec = wire.Codec(wire.Limits(settings.max_candles, settings.max_batch_items))
    app.state.oip_types = oip.request_types(settings.max_batch_items)
    _document(app, app.state.codec, app.state.oip_types)
    if settings.bench_routes:  # first, so the baseline pays no more route matching than /predict
        app.include_router(bench.router)
    for module in (predict, tiers, health, admin, v2, symbols, ws, console):
        app.include_router(module.router)
    app.mount(console.STATIC, console.static(), name="console")
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
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


def create_app_from_env() -> FastAPI:
    """The factory for `uvicorn --factory` (several workers): settings from TIERED_* variables."""
    return create_app(Settings())
