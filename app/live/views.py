"""The JSON a followed symbol is shown in: msgspec types and their builders from domain values.

  * `SymbolUpdate`: one closed bar and its prediction. It is the body of GET /symbols/{symbol} (the
    latest bar) and of every event pushed for the symbol (SSE `data`, WebSocket `data`), encoded once
    per bar. Its prediction fields are /predict's, its regime adds `detected` and `held`; a bar that
    could not be predicted carries `problem` and nulls instead.
  * `SymbolSummary`: a symbol in the GET /symbols listing: the feed's state, last bar, counters.
  * `Outcomes`: a symbol's last predictions joined to their realised targets (GET .../outcomes).
  * `Notice`: the other events (a gap in a resumed stream, a dropped subscriber, the service stopping).
Times are ISO 8601 in UTC; bar times are also kept as epoch milliseconds (`ts`, the event id).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from app.dataplane import ClassPrediction, TargetInfo
from app.live.predictor import Prediction, Unpredicted
from app.quality import Recent
from app.router import Reason
from app.wire import Signals
from market.candles import Book, Candles
from market.feeds import FeedState, SymbolStatus
from market.feeds.events import Status


class BarView(Struct):
    ts: Annotated[int, Meta(description="open time, epoch ms; the event id")]
    time: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy_volume: float | None  # Bybit's bars have none


class StateView(Struct):
    status: Status
    reason: Annotated[str, Meta(description="why it is not live; empty when live")]
    since: str


class LiveRegime(Struct):
    name: Annotated[str, Meta(description="the regime in force, which routed this bar")]
    detected: Annotated[str, Meta(description="what the detector alone says for this bar's window")]
    held: Annotated[bool, Meta(description="hysteresis kept `name` although the detector said otherwise")]
    signals: Signals
    estimated: list[str]


class SymbolUpdate(Struct):
    symbol: str
    feed: str
    state: StateView
    bar: BarView | None
    backfilled: Annotated[bool, Meta(description="recovered over REST after an outage, not pushed live")]
    tier: str | None
    requested_tier: str | None
    reason: Reason | None
    regime: LiveRegime | None
    prediction: float | ClassPrediction | None
    target: TargetInfo | None
    family_id: str | None
    latency_us: float | None
    problem: Annotated[str | None, Meta(description="why this bar has no prediction")]
    predicted_at: str | None
    stale: Annotated[bool, Meta(description="the last prediction is older than one bar plus the grace")]


class CountersView(Struct):
    bars: int
    backfilled: int
    reconnects: int
    gaps: int
    backfills: int
    backfill_failures: int
    dropped: Annotated[dict[str, int], Meta(description="exchange inputs refused, by reason")]
    events_dropped: Annotated[int, Meta(description="events the service did not take in time")]


class BookView(Struct):
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    spread_bps: float
    imbalance: float


class SymbolSummary(Struct):
    symbol: str
    feed: str
    interval: str
    interval_ms: int
    state: StateView
    last_bar_ts: int | None
    last_bar_time: str | None
    age_seconds: Annotated[float | None, Meta(description="since the last closed bar was received")]
    stale: bool
    window_bars: int
    counters: CountersView
    last_drop: str
    book: BookView | None
    subscribers: int


class SymbolList(Struct):
    symbols: list[SymbolSummary]


class OutcomeView(Struct):
    ts: Annotated[int, Meta(description="the predicted bar's open time, epoch ms")]
    tier: str
    regime: str
    predicted: Annotated[float, Meta(description="the routed tier's prediction (a class index)")]
    realised: Annotated[float, Meta(description="the target once its horizon passed (a class's index)")]


class Outcomes(Struct):
    symbol: str
    outcomes: Annotated[list[OutcomeView], Meta(description="the last realised predictions, oldest first")]


class Notice(Struct, omit_defaults=True):
    kind: Literal["gap", "dropped", "end"]
    reason: str
    symbol: str | None = None
    after: Annotated[int | None, Meta(description="gap: the id the client resumed after")] = None
    resumed_from: Annotated[int | None, Meta(description="gap: the oldest id still kept")] = None


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bar_view(bar: Candles) -> BarView:
    ts = int(bar.ts[0])
    taker = None if bar.taker_buy_volume is None else float(bar.taker_buy_volume[0])
    return BarView(ts, iso(ts / 1000), float(bar.open[0]), float(bar.high[0]), float(bar.low[0]),
                   float(bar.close[0]), float(bar.volume[0]), taker)


def state_view(state: FeedState) -> StateView:
    return StateView(state.status, state.reason, iso(state.since))


def update(symbol: str, feed: str, state: FeedState, bar: Candles | None, backfilled: bool,
           outcome: Prediction | Unpredicted | None, at: float | None, stale: bool) -> SymbolUpdate:
    """`at`: when the outcome was reached (epoch seconds)."""
    shown = None if bar is None else bar_view(bar)
    if not isinstance(outcome, Prediction):
        problem = outcome.problem if outcome is not None else None
        return SymbolUpdate(symbol, feed, state_view(state), shown, backfilled, None, None, None, None, None,
                            None, None, None, problem, None, stale)
    a = outcome.answer
    d = a.decision
    regime = LiveRegime(d.regime, outcome.detected, outcome.held, Signals(**d.signals), d.estimated)
    return SymbolUpdate(symbol, feed, state_view(state), shown, backfilled, d.tier, d.requested, d.reason,
                        regime, a.prediction, a.target, d.family_id, a.latency_us, None,
                        None if at is None else iso(at), stale)


def is_stale(predicted_at: float | None, cadence: float, grace: float, now: float | None = None) -> bool:
    """No prediction yet, or the last is older than one bar (the feed's wall-clock pace) plus the grace."""
    return predicted_at is None or (now or time.time()) - predicted_at > cadence + grace


def summary(name: str, status: SymbolStatus, received: float | None, stale: bool,
            subscribers: int) -> SymbolSummary:
    c = status.counters
    counters = CountersView(c.bars, c.backfilled, c.reconnects, c.gaps, c.backfills, c.backfill_failures,
                            dict(c.dropped), status.events_dropped)
    last = status.last_bar_ts
    return SymbolSummary(
        name, status.spec, status.interval, status.interval_ms, state_view(status.state), last,
        None if last is None else iso(last / 1000), None if received is None else time.time() - received,
        stale, status.window_bars, counters, status.last_drop, _book(status.book), subscribers)


def _book(book: Book | None) -> BookView | None:
    if book is None:
        return None
    (bid, bid_size), (ask, ask_size) = book.bids[0].tolist(), book.asks[0].tolist()
    return BookView(bid, bid_size, ask, ask_size, book.spread_bps, book.imbalance)


def outcomes(symbol: str, recent: list[Recent]) -> Outcomes:
    return Outcomes(symbol, [OutcomeView(r.ts, r.tier, r.regime, r.predicted, r.realised) for r in recent])


def components() -> dict[str, Any]:
    """The bodies as OpenAPI components (routes refer to them by name)."""
    _, found = msgspec.json.schema_components([SymbolList, SymbolUpdate, StateView, Notice, Outcomes],
                                              ref_template="#/components/schemas/{name}")
    return found
