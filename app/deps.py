"""Typed dependencies the routes declare: settings, data plane, the Open Inference Protocol's models,
codecs, registry, counters, control and live symbols.

Everything lives on `app.state`, put there by the lifespan in `app/main.py`. The getters are
`async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, and that hop cost
more than the whole prediction (a profile of /predict showed one thread hop per dependency per request).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from app import oip
from app.control import Control
from app.dataplane import DataPlane
from app.errors import AdminDisabled, Unauthorized
from app.inference import Inference
from app.live.follower import Live
from app.metrics import Metrics
from app.quality import Quality
from app.registry import Registry
from app.settings import Settings
from app.wire import Codec


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_plane(request: Request) -> DataPlane:
    return request.app.state.plane


async def get_codec(request: Request) -> Codec:
    return request.app.state.codec


async def get_oip_types(request: Request) -> oip.RequestTypes:
    return request.app.state.oip_types


async def get_inference(request: Request) -> Inference:
    return request.app.state.inference


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_quality(request: Request) -> Quality:
    return request.app.state.quality


async def get_live(connection: HTTPConnection) -> Live:  # a request or a WebSocket
    return connection.app.state.live


async def get_control(request: Request) -> Control:
    return request.app.state.control


SettingsDep = Annotated[Settings, Depends(get_settings)]
DataPlaneDep = Annotated[DataPlane, Depends(get_plane)]
CodecDep = Annotated[Codec, Depends(get_codec)]
OipTypesDep = Annotated[oip.RequestTypes, Depends(get_oip_types)]
InferenceDep = Annotated[Inference, Depends(get_inference)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
LiveDep = Annotated[Live, Depends(get_live)]
QualityDep = Annotated[Quality, Depends(get_quality)]


ControlDep = Annotated[Control, Depends(get_control)]


_bearer = HTTPBearer(auto_error=False, description="TIERED_ADMIN_TOKEN")


async def require_admin(settings: SettingsDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """The admin API is off without a configured token; with one, the Bearer token must match it."""
    if settings.admin_token is None:
        raise AdminDisabled("the admin API is off; set TIERED_ADMIN_TOKEN to enable it")
    given = credentials.credentials if credentials is not None else ""
    # Compare digests in constant time, so neither the content nor the length of the token leaks.
    expected = hashlib.sha256(settings.admin_token.get_secret_value().encode()).digest()
    if not given or not hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected):
        raise Unauthorized("missing or wrong token; send Authorization: Bearer <TIERED_ADMIN_TOKEN>")


AdminDep = Depends(require_admin)
