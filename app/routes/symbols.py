"""GET /symbols, /symbols/{symbol} and /symbols/{symbol}/events (SSE): the symbols the service follows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from app import wire
from app.deps import LiveDep, QualityDep
from app.errors import ErrorBody
from app.live import sse, views

router = APIRouter(tags=["live"])
Resume = Annotated[tuple[str, int | None], Depends(sse.resume_point)]
UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "a symbol the service does not follow"}}
# The stream's errors are JSON, not events: stated as content, since a `model` would be documented in the
# route's own media type (text/event-stream).
_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
STREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "a symbol the service does not follow", "content": _ERROR_JSON},
    422: {"description": "Last-Event-ID or last_event_id is not an event id", "content": _ERROR_JSON}}


@router.get("/symbols", summary="Every followed symbol: its feed's state, last bar, age and counters",
            responses=wire.response("SymbolList"))
async def symbols(live: LiveDep) -> Response:
    return wire.json_response(live.listing())


@router.get("/symbols/{symbol}", summary="The symbol's last closed bar and its prediction",
            responses={**UNKNOWN, **wire.response("SymbolUpdate")})
async def symbol(symbol: str, live: LiveDep) -> Response:
    return wire.json_response(live.latest(symbol))


@router.get("/symbols/{symbol}/outcomes", summary="The symbol's last predictions with their realised targets",
            responses={**UNKNOWN, **wire.response("Outcomes")})
async def outcomes(symbol: str, live: LiveDep, quality: QualityDep) -> Response:
    live.symbol(symbol)
    return wire.json_response(views.outcomes(symbol, quality.recent(symbol)))


@router.get("/symbols/{symbol}/events", response_class=EventSourceResponse,
            summary="Server-Sent Events: one per closed bar (the body of /symbols/{symbol}); resumable "
                    "with Last-Event-ID", responses=STREAM_ERRORS)
async def events(resume: Resume, live: LiveDep) -> AsyncIterator[ServerSentEvent]:
    async for event in sse.stream(live, *resume):
        yield event
