"""The routed model `tiered`: a raw market window as a tensor in, the answer of the tier its regime chose
out, through the same data plane as POST /predict (the same window rules, features, routing, family).

Inputs, B windows of W bars (1 ≤ B ≤ TIERED_MAX_BATCH_ITEMS, family window ≤ W ≤ TIERED_MAX_CANDLES):
  * WINDOW FP32 [B, W, 5 or 6]: per bar, oldest first, open, high, low, close, volume and, in a sixth
    column, the taker-buy volume;
  * BOOK FP32 [B, 2], optional: the book at the last close as its spread in bps (> 0) and its top-of-book
    size imbalance in [-1, 1]; a row of two NaN means no book for that window, which /predict
    estimates from the candles, as it does without a book;
  * TS INT64 [B, W], optional: each bar's open time in epoch milliseconds.
Outputs: the family's target (e.g. `return`) FP32 [B, K]; TIER INT64 [B, 1], the index of the tier that
answered in the family's order (largest first); REGIME INT64 [B, 1], the index of the regime in
`market.regime.REGIMES`. The index → name maps are in the model's metadata, `properties` (a string map:
a JSON object over REST, field 6 of ModelMetadataResponse over gRPC, which tritonclient.grpc's own message
does not define, so its users read the maps over REST): `labels.TIER`, `labels.REGIME` and, for a
target with classes, `labels.<target>`, names comma-separated in index order. Request parameters
`tier` (an override) and `max_latency_ms` (a latency budget) act as on /predict.

Timestamps. The features read one time, the last bar's open time (the calendar features: time of
day, day of week, `market.features`). With TS, the answer is /predict's for the same window, bit for
bit. Without it, the last bar is taken to open at the server's clock when the request arrives (the bars
before it one minute apart, which no feature reads): a live caller with short bars loses little (the
calendar is late by about one bar), a caller replaying history loses the calendar (it describes the
moment of the call, not the bar's), and the same tensors answered at another time may differ. The
response's parameters say which: `ts` is `TS` or `server_clock`, with `last_bar_ts` for the latter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from app import tensors
from app.dataplane import DataPlane, Query
from app.errors import BadRequest
from app.forms import MAX_LATENCY_MS
from app.inference import ModelInfo, Request, Result, TensorInfo, inputs_by_name, out_of_range
from app.registry import Family
from app.windows import TENSOR, TS_TENSOR, Names, Window
from app.wire import Limits
from market.regime import REGIMES

NAME = "tiered"
PLATFORM = "tiered_router"  # a routed ensemble of the family's onnxruntime models
BOOK, TIER, REGIME = "BOOK", "TIER", "REGIME"
TAKES = {TENSOR: ("FP32", True), BOOK: ("FP32", False), TS_TENSOR: ("INT64", False)}
MINUTE_MS = 60_000
COLUMNS = "open, high, low, close, volume[, taker_buy_volume]"


class RoutedModel:
    name = NAME

    def __init__(self, plane: DataPlane, limits: Limits, now_ms: Callable[[], int]) -> None:
        self.plane, self.limits, self.now_ms = plane, limits, now_ms

    def info(self, family: Family) -> ModelInfo:
        m = family.manifest
        properties = {
            "family_id": family.family_id, "target": m.target.name, "horizon": str(m.target.horizon),
            "units": m.target.units,
            f"labels.{TIER}": ",".join(family.order), f"labels.{REGIME}": ",".join(REGIMES),
            TENSOR: f"[windows, bars, 5 or 6], oldest bar first: {COLUMNS}; bars ≥ {m.features.window}",
            BOOK: "optional [windows, 2]: spread_bps (> 0), imbalance in [-1, 1]; a row of NaN: no book",
            TS_TENSOR: "optional [windows, bars] bar open times, epoch ms; without it the last bar opens at "
                       "the server's clock, so the calendar features (time of day, day of week) describe the "
                       "call",
            "parameters": "tier: override the regime's tier; max_latency_ms: a latency budget",
        }
        if m.target.classes:
            properties[f"labels.{m.output.name}"] = ",".join(m.target.classes)
        return ModelInfo(NAME, [family.family_id], PLATFORM,
                         [TensorInfo(TENSOR, "FP32", (-1, -1, -1)), TensorInfo(BOOK, "FP32", (-1, 2)),
                          TensorInfo(TS_TENSOR, "INT64", (-1, -1))],
                         [TensorInfo(m.output.name, "FP32", (-1, m.target.width)),
                          TensorInfo(TIER, "INT64", (-1, 1)), TensorInfo(REGIME, "INT64", (-1, 1))],
                         properties)

    def problem(self, family: Family) -> str | None:
        return None if family.available else "no tier of the family is loaded"

    async def infer(self, request: Request, family: Family) -> Result:
        given = inputs_by_name(request, TAKES)
        window = self._window(given[TENSOR], family.manifest.features.window)
        b, w = window.shape[:2]
        book = self._book(given.get(BOOK), b)
        if TS_TENSOR in given:
            ts = self._ts(given[TS_TENSOR], (b, w))
            parameters: dict[str, Any] = {"ts": TS_TENSOR}
        else:
            now = self.now_ms()
            ts = np.broadcast_to(now - MINUTE_MS * np.arange(w - 1, -1, -1, dtype=np.float64), (b, w))
            parameters = {"ts": "server_clock", "last_bar_ts": now}
        tier, budget = self._parameters(request.parameters, family)
        queries = [Query(_window_of(window[i], ts[i], book[i], i), tier, budget) for i in range(b)]
        if b == 1:  # alone, it joins the predictions of the same event-loop turn (`DataPlane.predict`)
            answers = [await self.plane.predict(queries[0])]
        else:
            answers, _ = self.plane.predict_many(queries)
        answered = answers[0].decision.family_id
        order = (family if family.family_id == answered else self.plane.registry.family).order
        outputs = [(family.manifest.output.name, np.stack([a.output for a in answers])),
                   (TIER, _column([order.index(a.decision.tier) for a in answers])),
                   (REGIME, _column([REGIMES.index(a.decision.regime) for a in answers]))]
        outside = {i: a.decision.out_of_range for i, a in enumerate(answers) if a.decision.out_of_range}
        return Result(NAME, answered, outputs, parameters={**parameters, **out_of_range(outside)})

    def _window(self, t: tensors.Incoming, bars: int) -> np.ndarray:
        lim = self.limits
        s = t.shape
        fits = (len(s) == 3 and s[2] in (5, 6) and 1 <= s[0] <= lim.max_batch_items
                and bars <= s[1] <= lim.max_candles)
        if not fits:
            raise BadRequest(f"input {t.name} has shape {list(s)}; send [windows, bars, 5 or 6] ({COLUMNS} "
                             f"per bar, oldest first) with 1 ≤ windows ≤ {lim.max_batch_items} "
                             f"(TIERED_MAX_BATCH_ITEMS) and {bars} ≤ bars ≤ {lim.max_candles} (the family's "
                             "window, TIERED_MAX_CANDLES)")
        return tensors.array(t)

    def _book(self, t: tensors.Incoming | None, b: int) -> np.ndarray:
        if t is None:
            return np.full((b, 2), np.nan)
        if t.shape != (b, 2):
            raise BadRequest(f"input {t.name} has shape {list(t.shape)}; send [{b}, 2] (spread_bps, "
                             "imbalance per window)")
        book = tensors.array(t).astype(np.float64)
        for i, (spread, imbalance) in enumerate(book.tolist()):
            if math.isnan(spread) and math.isnan(imbalance):
                continue  # no book for this window
            if not (math.isfinite(spread) and spread > 0):
                raise BadRequest(f"{t.name}[{i}][0] (spread_bps) is {spread!r}; send a finite spread in "
                                 "basis points greater than 0, or NaN in both columns for no book")
            if not (math.isfinite(imbalance) and -1 <= imbalance <= 1):
                raise BadRequest(f"{t.name}[{i}][1] (imbalance) is {imbalance!r}; send a finite imbalance in "
                                 "[-1, 1], or NaN in both columns for no book")
        return book

    def _ts(self, t: tensors.Incoming, shape: tuple[int, int]) -> np.ndarray:
        if t.shape != shape:
            raise BadRequest(f"input {t.name} has shape {list(t.shape)}; send {list(shape)}, one open time "
                             f"per bar of {TENSOR}")
        return tensors.array(t).astype(np.float64)  # the window rules check them, naming TS[i][j]

    def _parameters(self, given: dict[str, Any], family: Family) -> tuple[str | None, float | None]:
        tier, budget = given.get("tier"), given.get("max_latency_ms")
        if tier is not None and (not isinstance(tier, str) or tier not in family.tiers):
            raise BadRequest(f"parameters.tier is {tier!r}; send a tier's name, one of {list(family.order)}")
        if budget is not None:
            ok = isinstance(budget, int | float) and not isinstance(budget, bool)
            if not (ok and 0 < budget <= MAX_LATENCY_MS):
                raise BadRequest(f"parameters.max_latency_ms is {budget!r}; send a number of milliseconds, "
                                 f"greater than 0 and at most {MAX_LATENCY_MS:g}")
            budget = float(budget)
        return tier, budget


def _window_of(bars: np.ndarray, ts: np.ndarray, book: np.ndarray, index: int) -> Window:
    """One window of the tensor as the data plane takes it: (7, W) float64, ts first, taker-buy last."""
    candles = np.empty((7, bars.shape[0]), dtype=np.float64)
    candles[0] = ts
    candles[1:1 + bars.shape[1]] = bars.T
    if bars.shape[1] == 5:
        candles[6] = np.nan
    return Window(candles, Names("tensor", index=index), bars.shape[1] == 6, float(book[0]), float(book[1]))


def _column(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64).reshape(-1, 1)

