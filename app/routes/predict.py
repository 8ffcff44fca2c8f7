"""POST /predict, /predict/batch and /regime: the body in one of three window forms (`app/forms.py`),
decoded by msgspec (`app/wire.py`), served by the data plane, answered as msgspec-encoded JSON."""

from __future__ import annotations

import time

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from app import examples, wire
from app.deps import CodecDep, DataPlaneDep
from app.errors import ERROR_RESPONSES, ErrorBody

INLINE_BATCH_BYTES = 64 << 10  # a dozen windows or so: below it a thread hop costs more than it frees

router = APIRouter(tags=["predict"], responses={
    **ERROR_RESPONSES,
    404: {"model": ErrorBody, "description": "unknown tier"},
    503: {"model": ErrorBody, "description": "no tier of the family is loaded"},
})


# Inline (async def), not in the thread pool: the prediction costs less than a thread hop, and inline
# calls of one event-loop turn are coalesced into one batch by the data plane.
@router.post("/predict", summary="Predict the next return for one market window",
             openapi_extra=wire.request_body("PredictRequest", examples.PREDICT),
             responses=wire.response("PredictResponse", examples.ANSWER))
async def predict(request: Request, plane: DataPlaneDep, codec: CodecDep) -> Response:
    query = codec.query(await request.body(), request.headers.get("content-type"))
    return wire.json_response(wire.predict_response(await plane.predict(query)))


@router.post("/predict/batch", summary="Predict many windows; one onnxruntime run per tier",
             openapi_extra=wire.request_body("BatchRequest", examples.BATCH),
             responses=wire.response("BatchResponse"))
async def predict_batch(request: Request, plane: DataPlaneDep, codec: CodecDep) -> Response:
    start = time.perf_counter_ns()
    body, content_type = await request.body(), request.headers.get("content-type")

    def serve() -> Response:
        answers, family_id = plane.predict_many(codec.queries(body, content_type))
        latency_us = (time.perf_counter_ns() - start) / 1e3
        return wire.json_response(wire.batch_response(answers, family_id, latency_us))

    # A large batch is decoded and served in the thread pool, so that it never holds the event loop (and
    # every other connection, health checks included) for its tens of milliseconds; a small one inline.
    return await anyio.to_thread.run_sync(serve) if len(body) > INLINE_BATCH_BYTES else serve()


@router.post("/regime", summary="The regime, its signals and the tier a window would be routed to",
             openapi_extra=wire.request_body("PredictRequest", examples.PREDICT),
             responses=wire.response("RegimeResponse"))
async def regime(request: Request, plane: DataPlaneDep, codec: CodecDep) -> Response:
    query = codec.query(await request.body(), request.headers.get("content-type"))
    return wire.json_response(wire.regime_response(plane.decide(query)))
