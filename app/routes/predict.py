"""POST /predict, /predict/batch and /regime."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import PredictorDep
from app.errors import ERROR_RESPONSES, ErrorBody
from app.schemas import BatchRequest, BatchResponse, PredictRequest, PredictResponse, RegimeResponse

router = APIRouter(tags=["predict"], responses={
    **ERROR_RESPONSES,
    404: {"model": ErrorBody, "description": "unknown tier"},
    503: {"model": ErrorBody, "description": "no tier of the family is loaded"},
})


# Inline (async def), not in the thread pool: the prediction costs less than a thread hop, and inline
# calls of one event-loop turn are coalesced into one batch (figures in the commit that chose this).
@router.post("/predict", summary="Predict the next return for one market window")
async def predict(body: PredictRequest, predictor: PredictorDep) -> PredictResponse:
    return await predictor.predict(body)


@router.post("/predict/batch", summary="Predict many windows; one onnxruntime run per tier")
async def predict_batch(body: BatchRequest, predictor: PredictorDep) -> BatchResponse:
    return predictor.predict_batch(body)


@router.post("/regime", summary="The regime, its signals and the tier a window would be routed to")
async def regime(body: PredictRequest, predictor: PredictorDep) -> RegimeResponse:
    return predictor.regime(body)
