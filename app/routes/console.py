"""GET /console: a read-only page over the family, live traffic and followed symbols.

The page is three static files inside the package (`app/console/`), served as they are: no build step
at run time, no external request (its Content-Security-Policy allows this origin only, so a stray font or
CDN link would fail loudly in the browser test rather than phone out).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse
from starlette.staticfiles import StaticFiles

CONSOLE = Path(__file__).resolve().parent.parent / "console"
STATIC = "/console/static"
# Self only; the page never loads anything from elsewhere and is never framed.
HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

router = APIRouter(tags=["console"])


@router.get("/console", summary="The console page (HTML)", response_class=FileResponse)
async def console() -> FileResponse:
    return FileResponse(CONSOLE / "index.html", media_type="text/html", headers=HEADERS)


def static() -> StaticFiles:
    """The page's script and style, mounted at STATIC."""
    return StaticFiles(directory=CONSOLE)
