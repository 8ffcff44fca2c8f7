"""Request and response models of the service's own endpoints (the Open Inference Protocol's are in
`app/oip.py`).

The per-value rules live here and run inside pydantic's core: finite numbers, prices > 0, sizes ≥ 0,
nothing beyond float32's range, bounded strings and arrays. Rules that relate several values (high ≥
max(open, close), increasing timestamps, a book that is not crossed, enough candles for the family's
window) need the family or the whole series and are checked in `app/windows.py`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from market.features import WINDOW
from models.manifest import Metrics, TargetSection, TensorSpec

F32_MAX = 3.4028234663852886e38
MAX_TS = 2**53  # epoch ms; far beyond any real date, and exact in a JSON double
MAX_BOOK_LEVELS = 1000
MAX_CANDLES_SCHEMA = 100_000  # hard cap; the configured TIERED_MAX_CANDLES is checked after parsing

# Strict: a number must be a JSON number ("1.5" as a string is refused, not converted).
Price = Annotated[float, Field(strict=True, gt=0, le=F32_MAX, allow_inf_nan=False)]
Size = Annotated[float, Field(strict=True, ge=0, le=F32_MAX, allow_inf_nan=False)]
TierName = Annotated[str, Field(min_length=1, max_length=32, description="a tier name, e.g. M2")]
Reason = Literal["regime", "override", "budget", "fallback"]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Candle(Closed):
    ts: int = Field(strict=True, ge=0, le=MAX_TS, description="bar open time, epoch milliseconds")
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Size
    taker_buy_volume: Size | None = Field(None, description="give it on every candle or on none")


class OrderBook(Closed):
    bids: list[tuple[Price, Size]] = Field(min_length=1, max_length=MAX_BOOK_LEVELS,
                                           description="[price, size] levels; best is the highest")
    asks: list[tuple[Price, Size]] = Field(min_length=1, max_length=MAX_BOOK_LEVELS,
                                           description="[price, size] levels; best is the lowest")


def _example_candles(n: int = 48) -> list[dict[str, Any]]:
    """A gently trending, deterministic series for the OpenAPI examples."""
    rows, close = [], 100.0
    for i in range(n):
        open_ = close
        close = round(open_ * math.exp(0.0004 + 0.0008 * math.sin(i / 3.0)), 4)
        high, low = round(max(open_, close) * 1.0006, 4), round(min(open_, close) * 0.9994, 4)
        rows.append({"ts": 1_704_067_200_000 + 60_000 * i, "open": open_, "high": high, "low": low,
                     "close": close, "volume": round(100.0 + 20.0 * math.cos(i / 5.0), 2)})
    return rows


EXAMPLE_CANDLES: Any = _example_candles()
EXAMPLE_BOOK: Any = {"bids": [[EXAMPLE_CANDLES[-1]["close"] * 0.9999, 3.0]],
                "asks": [[EXAMPLE_CANDLES[-1]["close"] * 1.0001, 2.0]]}


class PredictRequest(Closed):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"symbol": "BTCUSDT", "candles": EXAMPLE_CANDLES, "book": EXAMPLE_BOOK},
        {"candles": EXAMPLE_CANDLES, "tier": "M0", "max_latency_ms": 5.0},
    ]})

    symbol: str | None = Field(None, max_length=64)
    candles: list[Candle] = Field(min_length=WINDOW, max_length=MAX_CANDLES_SCHEMA,
                                  description=f"oldest first; at least the window ({WINDOW}), at most "
                                              "TIERED_MAX_CANDLES (default 2048)")
    book: OrderBook | None = Field(None, description="order book at the last close; without it spread "
                                                     "and imbalance are estimated from the candles")
    tier: TierName | None = Field(None, description="ask for this tier instead of the regime's choice")
    max_latency_ms: float | None = Field(None, strict=True, gt=0, le=60_000, allow_inf_nan=False,
                                         description="latency budget: use the largest tier that fits")


class BatchRequest(Closed):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"items": [{"candles": EXAMPLE_CANDLES}, {"candles": EXAMPLE_CANDLES, "book": EXAMPLE_BOOK}]},
    ]})

    items: list[PredictRequest] = Field(min_length=1, max_length=1000,
                                        description="windows to predict; at most TIERED_MAX_BATCH_ITEMS")


class Signals(BaseModel):
    volatility: float = Field(description="mean (high − low) / close of the last bars, bps")
    spread_bps: float
    imbalance: float = Field(description="top-of-book size imbalance in [-1, 1]")
    trend: float = Field(description="efficiency ratio over the window, in [0, 1]")
    vol_shift: float = Field(description="recent volatility over the window's")


class RegimeInfo(BaseModel):
    name: str
    signals: Signals
    estimated: list[str] = Field(description="signals estimated from the candles (no book given)")


class ClassPrediction(BaseModel):
    label: str
    probabilities: dict[str, float]


class TargetInfo(BaseModel):
    name: str = Field(description="what the family predicts, e.g. return, direction, volatility")
    horizon: int = Field(description="bars ahead")
    units: str = Field(description="what `prediction` is")


class Routed(BaseModel):
    tier: str = Field(description="the tier that answered")
    requested_tier: str = Field(description="the tier the override or the regime asked for")
    reason: Reason
    regime: RegimeInfo
    family_id: str


class PredictResponse(Routed):
    prediction: float | ClassPrediction = Field(
        description="in `target.units`: one value, or for a target with classes the likeliest class and "
                    "every class's probability")
    target: TargetInfo
    latency_us: float = Field(description="server time from validated request to prediction")


class BatchResponse(BaseModel):
    results: list[PredictResponse]
    family_id: str
    latency_us: float


class RegimeResponse(Routed):
    pass


class LiveStats(BaseModel):
    requests: int = Field(description="predictions served since the process started")
    share: float = Field(description="this tier's share of all predictions served")
    p50_us: float | None
    p99_us: float | None


class TierInfo(BaseModel):
    name: str
    role: str
    teacher: str | None = Field(description="the tier it was distilled from (lineage)")
    layers: int
    width: int
    params: int
    compression: float
    alpha: float | None
    temperature: float | None
    metrics: Metrics
    per_regime: dict[str, Metrics]
    file: str
    sha256: str
    parity_max_abs_diff: float
    available: bool
    problem: str | None = Field(description="why the tier is unavailable")
    latency_us: float | None = Field(description="batch-1 run time measured when this service loaded it")
    latency_us_at_training: float
    live: LiveStats


class FamilyInfo(BaseModel):
    family_id: str
    created_at: str
    target: TargetSection
    source: dict[str, Any]
    window: int = Field(description="candles a request must carry at least")
    use_book: bool
    thresholds: dict[str, float] = Field(description="regime thresholds in use (manifest + overrides)")
    tier_map: dict[str, str]
    input: TensorSpec
    output: TensorSpec
    tiers: list[TierInfo]
    baselines: dict[str, Metrics]
    classical: dict[str, Metrics] = Field(description="classical baselines on the same test split")
    verdict: str = Field(description="whether any tier beats the best classical baseline")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    family_id: str
    available: list[str]
    unavailable: dict[str, str] = Field(description="tier → why it is not serving")


class Reloaded(BaseModel):
    family_id: str
    previous_family_id: str
    available: list[str]
