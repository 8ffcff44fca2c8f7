"""WebSocket /ws: several symbols' events over one connection (the protocol: `app/live/protocol.py`)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.deps import LiveDep
from app.live import protocol

router = APIRouter(tags=["live"])


@router.websocket("/ws")
async def ws(websocket: WebSocket, live: LiveDep) -> None:
    await protocol.serve(websocket, live)
