"""POST /bench/bare (only with TIERED_BENCH_ROUTES=1): the floor of this stack for the serving benchmark.

It is what a plain FastAPI service does with a window: FastAPI parses the body into pydantic models,
one per candle, with the value rules /predict applies (finite, prices > 0, volumes ≥ 0, within
float32's range), and answers a constant. `bench serve` compares /predict, in every request form,
with it in the same server: the difference is the prediction, and whatever the service does better or
worse than this textbook endpoint at reading a window.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.windows import F32_MAX, MAX_TS

Price = Annotated[float, Field(strict=True, gt=0, le=F32_MAX, allow_inf_nan=False)]
Size = Annotated[float, Field(strict=True, ge=0, le=F32_MAX, allow_inf_nan=False)]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Candle(Closed):
    ts: int = Field(strict=True, ge=0, lt=MAX_TS)
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Size
    taker_buy_volume: Size | None = None


class OrderBook(Closed):
    bids: list[tuple[Price, Size]] = Field(min_length=1, max_length=1000)
    asks: list[tuple[Price, Size]] = Field(min_length=1, max_length=1000)


class Window(Closed):
    symbol: str | None = Field(None, max_length=64)
    candles: list[Candle] = Field(min_length=1, max_length=100_000)
    book: OrderBook | None = None
    tier: str | None = Field(None, min_length=1, max_length=32)
    max_latency_ms: float | None = Field(None, strict=True, gt=0, le=60_000, allow_inf_nan=False)


router = APIRouter(tags=["bench"])


@router.post("/bench/bare", summary="Parse a window as pydantic candle objects and answer a constant")
async def bare(body: Window) -> dict[str, float]:
    return {"prediction": 0.0}
