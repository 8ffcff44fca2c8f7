"""The prediction path without HTTP, timed in this process: what the service could do at best.

  * onnxruntime per tier: batch-1 µs per call and batch-1024 predictions/s, on the sessions the app's
    own registry builds (`app.registry.load_family`: same session options, same thread count);
  * decoding a request body into the data plane's query with the app's own codec (`app/wire.py`), µs
    per window, alone and inside a batch, for candle objects and for columns;
  * features + regime detection for one window (`features.window_of` → `features.compute` →
    `regime.detect`), µs;
  * the whole path for B windows already in memory: features, regime, the app's router
    (`app.router.route`) and one onnxruntime run per tier, predictions/s: the service's batch
    endpoint minus JSON and HTTP.
Times are medians of many calls (perf_counter_ns), after a warm-up.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from app.registry import Family
from app.router import route
from app.wire import Codec, Limits
from bench.bodies import Form, Windows
from market import features
from market.regime import REGIMES, detect

WARMUP = 20
BIG_BATCH = 1024


def median_us(call: Callable[[], object], runs: int, warmup: int = WARMUP) -> float:
    for _ in range(warmup):
        call()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter_ns()
        call()
        times[i] = time.perf_counter_ns() - start
    return float(np.median(times)) / 1e3


def tier_latency_us(family: Family, x: np.ndarray, runs: int) -> dict[str, float]:
    """Median batch-1 µs per call of every tier, cycling through the rows of `x`."""
    rows = [x[i:i + 1] for i in range(min(len(x), 256))]

    def cycling(tier: str) -> Callable[[], object]:
        state = {"i": 0}

        def one() -> object:
            state["i"] += 1
            return family.run(tier, rows[state["i"] % len(rows)])
        return one

    return {tier: median_us(cycling(tier), runs) for tier in family.available}


def tier_throughput(family: Family, x: np.ndarray, runs: int) -> dict[str, float]:
    """Predictions/s of every tier at batch BIG_BATCH (rows of `x` repeated to fill the batch)."""
    big = np.ascontiguousarray(np.resize(x, (BIG_BATCH, x.shape[1])))
    def run(tier: str) -> Callable[[], object]:
        return lambda: family.run(tier, big)

    return {tier: BIG_BATCH / (median_us(run(tier), runs, warmup=3) / 1e6) for tier in family.available}


def features_us(family: Family, windows: Windows, runs: int) -> dict[str, float]:
    """µs per window of each step the service runs before onnxruntime, and their sum."""
    n = len(windows.ends)
    raw = [(windows.candles(k), windows.book(k)) for k in range(n)]
    cut = [features.window_of(c, b) for c, b in raw]
    computed = [features.compute(w) for w in cut]
    counter = {"window": 0, "compute": 0, "detect": 0}

    def step(name: str, call: Callable[[int], object]) -> Callable[[], object]:
        def go() -> object:
            counter[name] += 1
            return call(counter[name] % n)
        return go

    parts = {
        "window_of": median_us(step("window", lambda k: features.window_of(*raw[k])), runs),
        "compute": median_us(step("compute", lambda k: features.compute(cut[k])), runs),
        "detect": median_us(step("detect", lambda k: detect(computed[k].signals, family.thresholds)), runs),
    }
    return {**parts, "total": sum(parts.values())}


def pipeline_throughput(family: Family, windows: Windows, size: int, runs: int) -> float:
    """Predictions/s of the whole in-memory path for `size` windows (the rotation, wrapped)."""
    batch = windows.as_features([k % len(windows.ends) for k in range(size)])

    def serve() -> np.ndarray:
        f = features.compute(batch)
        regimes = detect(f.signals, family.thresholds)
        rows_of: dict[str, list[int]] = defaultdict(list)
        for row, r in enumerate(regimes):
            rows_of[route(family, REGIMES[r]).tier].append(row)
        y = np.empty((size, family.manifest.output.shape[1] or 1), dtype=np.float32)
        for tier, rows in rows_of.items():  # one onnxruntime run per tier, as the service does
            y[rows] = family.run(tier, f.x[rows])
        return y

    return size / (median_us(serve, runs, warmup=3) / 1e6)


def parse_us(windows: Windows, batch: int, runs: int) -> dict[str, float]:
    """µs per window to decode a /predict body, and a /predict/batch body of `batch` windows, into the data
    plane's queries (msgspec, then the window's form to arrays), for candle objects and for columns."""
    codec = Codec(Limits(max_candles=2048, max_batch_items=batch))
    n = len(windows.ends)
    out: dict[str, float] = {"batch_size": float(batch)}
    forms: tuple[Form, ...] = ("objects", "columns")
    for form in forms:
        bodies = itertools.cycle([windows.body(k, form) for k in range(n)])
        many = windows.batch(0, batch, form)
        out[form] = median_us(lambda: codec.query(next(bodies), "application/json"), runs)  # noqa: B023
        per_batch = median_us(lambda: codec.queries(many, "application/json"), max(5, runs // 100),  # noqa: B023
                              warmup=2)
        out[f"batch_{form}"] = per_batch / batch
    return out
