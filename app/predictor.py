"""The data plane: validated requests → windows → features → regime → route → onnxruntime → answers.

Routes call this and nothing else. Every call reads the registry's family once, so a reload in the
middle of a call cannot mix two families.

`predict` coalesces the /predict calls that reach it in the same event-loop turn and serves them as
one batch: the candle checks, the feature pipeline and the regime detector run once for all of them
and each tier runs once on the rows routed to it. A lone request is served in the same turn, so it
waits for nothing; under concurrent load the fixed per-call cost of numpy and onnxruntime is shared
(figures in the commit that introduced it). A bad request fails only itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import numpy as np

from app import oip, windows
from app.errors import BadRequest, InvalidInput, ServiceError, TierUnavailable
from app.metrics import Metrics
from app.prediction import decode, target_info
from app.registry import Family, Registry
from app.router import Route, check_tier, route
from app.schemas import (
    BatchRequest,
    BatchResponse,
    PredictRequest,
    PredictResponse,
    RegimeInfo,
    RegimeResponse,
    Signals,
)
from market.features import SIGNAL_NAMES, Features
from market.regime import REGIMES, detect

COALESCE_MAX = 64  # requests served together at most; more wait for the next batch of the same turn

Outcome = PredictResponse | ServiceError
_Pending = tuple[PredictRequest, windows.Admitted, int, "asyncio.Future[PredictResponse]"]


class Predictor:
    def __init__(self, registry: Registry, metrics: Metrics, max_candles: int, max_batch_items: int) -> None:
        self.registry, self.metrics = registry, metrics
        self.max_candles, self.max_batch_items = max_candles, max_batch_items
        self._pending: list[_Pending] = []
        self._flush_scheduled = False

    async def predict(self, request: PredictRequest) -> PredictResponse:
        start = time.perf_counter_ns()
        admitted = self._admit(request)  # a request that breaks a rule of its own fails here, alone
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PredictResponse] = loop.create_future()
        self._pending.append((request, admitted, start, future))
        if not self._flush_scheduled:
            # Runs after the callbacks already queued for this turn: requests parsed in the same turn join.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _admit(self, request: PredictRequest, prefix: str = "") -> windows.Admitted:
        return windows.admit(request, self.registry.family.manifest.features.window, self.max_candles, prefix)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for lo in range(0, len(pending), COALESCE_MAX):
            chunk = pending[lo:lo + COALESCE_MAX]
            outcomes: list[Outcome | BaseException]
            try:
                requests, admitted, starts, _ = zip(*chunk, strict=True)
                outcomes = list(self._serve(list(requests), list(admitted), list(starts), isolate=True))
            except Exception as e:  # a failure of the whole batch reaches every caller in it
                outcomes = [e] * len(chunk)
            for (*_, future), outcome in zip(chunk, outcomes, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def predict_batch(self, request: BatchRequest) -> BatchResponse:
        start = time.perf_counter_ns()
        n = len(request.items)
        if n > self.max_batch_items:
            raise InvalidInput(f"items: got {n}; send at most {self.max_batch_items} per call "
                               "(TIERED_MAX_BATCH_ITEMS)", "items")
        family = self.registry.family
        admitted = [self._admit(item, f"items[{i}].") for i, item in enumerate(request.items)]
        results = self._serve(request.items, admitted, [start] * n, isolate=False, family=family)
        answers = [r for r in results if isinstance(r, PredictResponse)]
        return BatchResponse(results=answers, family_id=family.family_id,
                             latency_us=(time.perf_counter_ns() - start) / 1e3)

    def regime(self, request: PredictRequest) -> RegimeResponse:
        family = self.registry.family
        prepared, regimes, routes, _ = self._decide(family, [request], [self._admit(request)], isolate=False)
        r = routes[0]
        info = _regime_info(prepared.features, 0, regimes[0])
        return RegimeResponse(tier=r.tier, requested_tier=r.requested, reason=r.reason, regime=info,
                              family_id=family.family_id)

    def infer(self, tier: str, request: oip.InferenceRequest) -> oip.InferenceResponse:
        """One tier on an FP32 feature tensor (the Open Inference Protocol path; no routing)."""
        start = time.perf_counter_ns()
        family = self.registry.family
        check_tier(family, tier, "model_name")
        x = oip.features_tensor(request, family, self.max_batch_items)
        if not family.tiers[tier].available:
            raise TierUnavailable(f"model {tier} is not ready: {family.tiers[tier].problem}")
        y = family.run(tier, x)
        if not np.isfinite(y).all():
            raise BadRequest("the model's output is not finite for this input; the features are far outside "
                             "anything the family was trained on")
        self.metrics.record(tier, "none", "direct", (time.perf_counter_ns() - start) / 1e3, len(x))
        return oip.inference_response(request, family, tier, y)

    def _decide(self, family: Family, requests: list[PredictRequest], admitted: list[windows.Admitted],
                isolate: bool) -> tuple[windows.Prepared, list[str], dict[int, Route], list[Outcome | None]]:
        """Features, regime and route of every request; with `isolate`, failures are per request."""
        prepared = windows.prepare(admitted, family.manifest.features.use_book, isolate)
        outcomes: list[Outcome | None] = [None] * len(requests)
        for i, error in prepared.errors.items():
            outcomes[i] = error
        regimes = [REGIMES[k] for k in detect(prepared.features.signals, family.thresholds)]
        routes: dict[int, Route] = {}
        for row, i in enumerate(prepared.items):
            try:
                routes[row] = route(family, regimes[row], requests[i].tier, requests[i].max_latency_ms,
                                    f"{admitted[i].prefix}tier")
            except ServiceError as e:
                if not isolate:
                    raise
                outcomes[i] = e
        return prepared, regimes, routes, outcomes

    def _serve(self, requests: list[PredictRequest], admitted: list[windows.Admitted], starts: list[int],
               isolate: bool, family: Family | None = None) -> list[Outcome]:
        family = family or self.registry.family
        prepared, regimes, routes, outcomes = self._decide(family, requests, admitted, isolate)
        rows_of: dict[str, list[int]] = defaultdict(list)
        for row, r in routes.items():
            rows_of[r.tier].append(row)
        y = np.empty((len(prepared.items), family.manifest.output.shape[1] or 1), dtype=np.float32)
        for tier, rows in rows_of.items():  # one onnxruntime run per tier
            y[rows] = family.run(tier, prepared.features.x[rows])
        finite = np.asarray(np.isfinite(y).all(axis=1))
        done = time.perf_counter_ns()
        for row, r in routes.items():
            i = prepared.items[row]
            if not finite[row]:
                field = f"{admitted[i].prefix}candles"
                error = InvalidInput(f"{field}: the model's output is not finite for this window; its values "
                                     "are far outside anything the family was trained on", field)
                if not isolate:
                    raise error
                outcomes[i] = error
                continue
            latency_us = (done - starts[i]) / 1e3
            self.metrics.record(r.tier, regimes[row], r.reason, latency_us)
            outcomes[i] = _answer(family, prepared.features, row, regimes[row], r, y[row], latency_us)
        answered = [o for o in outcomes if o is not None]
        assert len(answered) == len(requests), "every request gets an answer or an error"
        return answered


def _answer(family: Family, f: Features, row: int, regime: str, r: Route, y: np.ndarray,
            latency_us: float) -> PredictResponse:
    target = family.manifest.target
    return PredictResponse(prediction=decode(target, y), target=target_info(target), tier=r.tier,
                           requested_tier=r.requested, reason=r.reason, regime=_regime_info(f, row, regime),
                           family_id=family.family_id, latency_us=latency_us)


def _regime_info(f: Features, row: int, name: str) -> RegimeInfo:
    signals = Signals(**dict(zip(SIGNAL_NAMES, f.signals[row].tolist(), strict=True)))
    return RegimeInfo(name=name, signals=signals, estimated=f.estimated(row))
