"""POST /bench/bare (only with TIERED_BENCH_ROUTES=1): parses the /predict body and returns a constant.

The serving benchmark compares /predict with this endpoint in the same server, so the difference is
the cost of the prediction itself (window, features, regime, routing, onnxruntime, response).
"""

from __future__ import annotations

from fastapi import APIRouter

from app.errors import ERROR_RESPONSES
from app.schemas import PredictRequest

router = APIRouter(tags=["bench"], responses=ERROR_RESPONSES)


@router.post("/bench/bare", summary="Parse a /predict body and answer a constant (benchmark baseline)")
async def bare(body: PredictRequest) -> dict[str, float]:
    return {"prediction": 0.0}
