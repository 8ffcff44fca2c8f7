"""The data plane: domain values in, domain results out, whatever the transport.

A transport (the HTTP routes, the Open Inference Protocol, later gRPC or a live feed) turns its own
format into `Query`s (a window as arrays with its book's signals, an optional tier override and latency
budget, the names of its elements for messages) and calls:

  * `predict(query)`, a coroutine: the calls that reach it in the same event-loop turn are served as one
    batch (checks, features and regime once for all, each tier run once on the rows routed to it); a
    lone call is served in the same turn, so it waits for nothing. A bad query fails only itself.
  * `predict_many(queries)`: one batch; the first refused query (the lowest index) fails the call.
  * `decide(query)`, `decide_many(queries)`: the regime, its signals and the route, without predicting.
  * `infer(tier, x)`: one tier on a checked feature tensor, no routing.
Every window's features are compared with the family's training range (`market/ranges.py`): a Decision
names the features out of it; with `RangePolicy(refuse=True)` a prediction of such a window is an
OutOfRange error instead (a /regime decision is never refused: it predicts nothing).

After the answers, a sample of them (`shadow_rate`) runs on the larger tiers, and the decision log and a
followed symbol's realised quality take their records (`app/served.py`, `app/shadow.py`), always in a
later turn of the event loop than the answers'.

Results are `Answer`s and `Decision`s; failures are the domain errors of `app/errors.py`, which each
transport maps to its own status. A query travels as one `_Job` record, whatever the call. Every call
reads the registry's family once, so a reload in the middle of a call cannot mix two families; the
synchronous calls also take that family from the caller, so that several calls (a live symbol's decision,
then its prediction) use one snapshot.

A query is routed by the detector's regime for its window, unless it carries the `regime` its caller
decided (a followed symbol's hysteresis, `app/live`). `estimated` in a decision names what the window
lacked and the pipeline estimated from the candles: the book's spread and imbalance, and `order_flow`
when the window has no taker-buy volume although the family was trained with it (the order-flow
features then read each bar's close location instead).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from app import windows
from app.errors import BadRequest, InvalidInput, OutOfRange, ServiceError, TierUnavailable
from app.metrics import Metrics
from app.registry import Family, Registry
from app.router import Reason, Route, check_tier, route
from app.served import Followup, Served
from app.shadow import Shadow
from app.windows import Window
from market.features import SIGNAL_NAMES
from market.regime import REGIMES, detect
from models.manifest import TargetSection

COALESCE_MAX = 64  # queries served together at most; more wait for the next batch of the same turn


@dataclass(frozen=True)
class Query:
    window: Window
    tier: str | None = None  # an override
    budget_ms: float | None = None  # a latency budget
    regime: str | None = None  # the caller's regime (one of REGIMES), routed instead of the detector's
    symbol: str | None = None  # what the window is of, when the caller knows (a followed symbol)
    tracked: bool = False  # a followed symbol's bar: recorded, run on every tier, scored when realised

    @property
    def prefix(self) -> str:
        return self.window.names.prefix


@dataclass(frozen=True)
class Decision:
    """Where a query goes and why."""

    tier: str  # the tier that answers
    requested: str  # the tier the override or the regime asked for
    reason: Reason
    regime: str
    signals: dict[str, float]  # by market.features.SIGNAL_NAMES
    estimated: list[str]  # inputs estimated from the candles: spread_bps, imbalance (no book), order_flow
    family_id: str
    last_bar_ts: int  # open time of the window's last bar, epoch ms
    dropped_open_candle: bool
    out_of_range: list[str] | None  # features outside the training range; None: the family has no ranges


@dataclass(frozen=True)
class RangePolicy:
    """What to do with a window outside the family's training range (TIERED_OUT_OF_RANGE, _RANGE_MARGIN)."""

    refuse: bool = False  # False: answer it, naming the features out of range
    margin: float = 0.5  # range widths beyond each end of the training range that still count as in


@dataclass(frozen=True)
class ClassPrediction:
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class TargetInfo:
    """What an answer's prediction is (the family's target, `market.targets`)."""

    name: str  # e.g. return, direction, volatility
    horizon: int  # bars ahead
    units: str  # what the prediction is, in words


@dataclass(frozen=True)
class Answer:
    decision: Decision
    prediction: float | ClassPrediction  # in target.units
    target: TargetInfo
    output: np.ndarray  # (K,) float32: the tier's output row
    latency_us: float


def prediction(target: TargetSection, output: np.ndarray) -> float | ClassPrediction:
    """One output row of a tier → the answer's prediction in the target's units: one value, or for a
    target with classes the likeliest class and every class's probability (the one place that reads it)."""
    if not target.classes:
        return float(output[0])
    return ClassPrediction(target.classes[int(np.argmax(output))],
                           dict(zip(target.classes, output.tolist(), strict=True)))


def target_info(target: TargetSection) -> TargetInfo:
    return TargetInfo(target.name, target.horizon, target.units)


@dataclass(frozen=True)
class Inferred:
    """What `infer` gives back."""

    y: np.ndarray  # (B, K) float32
    family: Family
    out_of_range: dict[int, list[str]]  # row → its features outside the training range, rows with any


@dataclass(eq=False)
class _Job:
    """One query through a call: when it started, where its answer goes, and what became of it."""

    query: Query
    start_ns: int
    future: asyncio.Future[Answer] | None = None
    outcome: Answer | Decision | ServiceError | None = None


class DataPlane:
    def __init__(self, registry: Registry, metrics: Metrics, ranges: RangePolicy | None = None,
                 shadow_rate: float = 0.0, followup_limit: int = 10_000) -> None:
        self.registry, self.metrics = registry, metrics
        self.ranges = ranges or RangePolicy()
        self.shadow = Shadow(shadow_rate, metrics.registry)
        self.followup = Followup(self.shadow, metrics.registry, followup_limit)
        self._pending: list[_Job] = []
        self._flush_scheduled = False

    async def predict(self, query: Query) -> Answer:
        loop = asyncio.get_running_loop()
        job = _Job(query, time.perf_counter_ns(), loop.create_future())
        self._pending.append(job)
        if not self._flush_scheduled:
            # Runs after the callbacks already queued for this turn: queries decoded in the same turn join.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        assert job.future is not None
        return await job.future

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for lo in range(0, len(pending), COALESCE_MAX):
            chunk = pending[lo:lo + COALESCE_MAX]
            try:
                self._serve(self.registry.family, chunk, predict=True)
            except Exception as e:  # a failure of the whole batch reaches every caller in it
                for job in chunk:
                    if job.future is not None and not job.future.done():
                        job.future.set_exception(e)
                continue
            for job in chunk:
                if job.future is None or job.future.done():  # the client went away
                    continue
                if isinstance(job.outcome, Answer):
                    job.future.set_result(job.outcome)
                else:
                    job.future.set_exception(_failure(job))

    def predict_many(self, queries: list[Query], family: Family | None = None) -> tuple[list[Answer], str]:
        """Answers in order, and the family that gave them all (`family`, or the registry's now)."""
        start = time.perf_counter_ns()
        family = family or self.registry.family
        jobs = [_Job(q, start) for q in queries]
        self._serve(family, jobs, predict=True)
        return [_answer_of(job) for job in jobs], family.family_id

    def decide(self, query: Query, family: Family | None = None) -> Decision:
        return self.decide_many([query], family)[0]

    def decide_many(self, queries: list[Query], family: Family | None = None) -> list[Decision]:
        """Decisions in order; the first refused query (the lowest index) fails the call."""
        jobs = [_Job(q, time.perf_counter_ns()) for q in queries]
        self._serve(family or self.registry.family, jobs, predict=False)
        decisions = []
        for job in jobs:
            if not isinstance(job.outcome, Decision):
                raise _failure(job)
            decisions.append(job.outcome)
        return decisions

    def infer(self, tier: str, x: np.ndarray, family: Family | None = None) -> Inferred:
        """One tier on a (B, F) float32 tensor the transport checked (against `family`, the snapshot it
        read, if any): its outputs, the family that gave them, and the rows out of the training range."""
        start = time.perf_counter_ns()
        family = family or self.registry.family
        check_tier(family, tier, "model_name")
        if not family.tiers[tier].available:
            raise TierUnavailable(f"model {tier} is not ready: {family.tiers[tier].problem}")
        out = self._out_of_range(family, x) or {}
        if out:
            action = "refused" if self.ranges.refuse else "flagged"
            self.metrics.outside(Tally({(tier, action): len(out)}))
            if self.ranges.refuse:
                row = min(out)
                raise _refusal(family, f"inputs[0] row {row}", out[row], x[row])
        y = family.run(tier, x)
        if not np.isfinite(y).all():
            raise BadRequest("the model's output is not finite for this input; the features are far outside "
                             "anything the family was trained on")
        latency_us = (time.perf_counter_ns() - start) / 1e3
        self.metrics.record((tier, "none", "direct", latency_us) for _ in range(len(x)))
        return Inferred(y, family, out)

    def _serve(self, family: Family, jobs: list[_Job], predict: bool) -> None:
        """Sets every job's outcome: an Answer (or a Decision when not predicting), or a ServiceError."""
        m = family.manifest
        prepared = windows.prepare([j.query.window for j in jobs], m.features.window, m.features.use_book)
        f = prepared.features
        regimes = [REGIMES[k] for k in detect(f.signals, family.thresholds)]
        routed: list[tuple[_Job, int, Route]] = []
        by_regime: dict[str, Route] = {}  # a query without override or budget goes where its regime goes
        for job, row in zip(jobs, prepared.rows, strict=True):
            if isinstance(row, InvalidInput):
                job.outcome = row
                continue
            q = job.query
            regime = regimes[row] if q.regime is None else q.regime
            try:
                if q.tier is None and q.budget_ms is None:
                    r = by_regime.get(regime) or by_regime.setdefault(regime, route(family, regime))
                else:
                    r = route(family, regime, q.tier, q.budget_ms, f"{q.prefix}tier")
            except ServiceError as e:
                job.outcome = e
                continue
            routed.append((job, row, r))
        decisions = {}
        signals = f.signals.tolist()
        flow_trained = family.trained_with_taker_volume
        out = self._out_of_range(family, f.x)
        outside: Tally[tuple[str, str]] = Tally()
        for job, row, r in routed:
            w = job.query.window
            estimated = f.estimated(row) + (["order_flow"] if flow_trained and not w.taker_volume else [])
            decisions[row] = Decision(r.tier, r.requested, r.reason, job.query.regime or regimes[row],
                                      dict(zip(SIGNAL_NAMES, signals[row], strict=True)), estimated,
                                      family.family_id, int(prepared.last_ts[row]), w.dropped_open_candle,
                                      None if out is None else out.get(row, []))
            if not predict:
                job.outcome = decisions[row]
            elif out and row in out:
                outside[(r.tier, "refused" if self.ranges.refuse else "flagged")] += 1
                if self.ranges.refuse:
                    job.outcome = _refusal(family, job.query.window.names.window, out[row], f.x[row])
        if outside:
            self.metrics.outside(outside)
        if predict:
            routed = [(job, row, r) for job, row, r in routed if job.outcome is None]
            if routed:
                self._run(family, routed, decisions, f.x)

    def _out_of_range(self, family: Family, x: np.ndarray) -> dict[int, list[str]] | None:
        """Feature row → names of its features outside the training range, for the rows with any; None
        when the family records no ranges."""
        if family.ranges is None:
            return None
        beyond = family.ranges.outside(x, self.ranges.margin)
        if not beyond.any():
            return {}
        rows = np.flatnonzero(beyond.any(axis=1))
        return dict(zip(rows.tolist(), family.ranges.out_names(beyond[rows]), strict=True))

    def _run(self, family: Family, routed: list[tuple[_Job, int, Route]], decisions: dict[int, Decision],
             x: np.ndarray) -> None:
        rows_of: dict[str, list[int]] = defaultdict(list)
        for _, row, r in routed:
            rows_of[r.tier].append(row)
        y = np.empty((len(x), family.manifest.output.shape[1] or 1), dtype=np.float32)
        for tier, rows in rows_of.items():  # one onnxruntime run per tier
            y[rows] = family.run(tier, x[rows])
        finite = np.all(np.isfinite(y), axis=1)
        done = time.perf_counter_ns()
        served = []
        for job, row, r in routed:
            if not finite[row]:
                name = job.query.window.names.window
                job.outcome = InvalidInput(f"{name}: the model's output is not finite for this window; its "
                                           "values are far outside anything the family was trained on", name)
                continue
            latency_us = (done - job.start_ns) / 1e3
            d = decisions[row]
            target = family.manifest.target
            job.outcome = answer = Answer(d, prediction(target, y[row]), target_info(target), y[row],
                                          latency_us)
            served.append((r.tier, d.regime, r.reason, latency_us))
            shadowed = self.shadow.sampled()
            if shadowed or self.followup.wanted(job.query.tracked):
                self.followup.add(Served(answer, job.query, x[row], family, shadowed, job.query.tracked))
        self.metrics.record(served)


SHOWN_FEATURES = 4  # a refusal details this many features out of range, and counts the rest


def _refusal(family: Family, field: str, names: list[str], x: np.ndarray) -> OutOfRange:
    """The 422 of a window out of range: every feature named, the first few with value and range."""
    assert family.ranges is not None
    r = family.ranges
    shown = []
    for name in names[:SHOWN_FEATURES]:
        j = r.names.index(name)
        shown.append(f"{name} = {float(x[j]):.4g} (trained: {r.low[j]:.4g} to {r.high[j]:.4g})")
    rest = names[SHOWN_FEATURES:]
    more = f", and {len(rest)} more ({', '.join(rest)})" if rest else ""
    low, high = (f"{q:.1%}".replace(".0%", "%") for q in r.quantiles)
    return OutOfRange(f"{field}: outside what family {family.family_id} was trained on, in {len(names)} "
                      f"feature{'s' if len(names) > 1 else ''}: {', '.join(shown)}{more} (trained: the "
                      f"training split's {low} to {high} quantiles). Check the window's prices and volumes "
                      "(units, a bad tick), or set TIERED_OUT_OF_RANGE=flag to have such windows answered "
                      "with these features named in out_of_range", field)


def _answer_of(job: _Job) -> Answer:
    if isinstance(job.outcome, Answer):
        return job.outcome
    raise _failure(job)


def _failure(job: _Job) -> BaseException:
    if isinstance(job.outcome, ServiceError):
        return job.outcome
    return RuntimeError(f"a query ended with {type(job.outcome).__name__}, not an answer")  # a bug here
