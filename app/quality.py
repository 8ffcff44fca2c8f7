"""Realised quality: a followed symbol's predictions scored against what the market then did.

    quality = Quality(keep=1000, registry=metrics.registry)
    plane.followup.listen(quality.on_served)     # each predicted bar, with every tier's output on it
    quality.on_bar("BTCUSDT", window)            # each closed bar: predictions whose horizon has passed
    quality.tier("M3")                           # by regime: outcomes, M3's scores, the others' on them
    quality.recent("BTCUSDT")                    # its last realised outcomes (the console's chart)

A followed symbol's bar is predicted by the tier its regime routes to, and run on every other tier too
(`Served.everywhere`). Once `horizon` more bars have closed, its target is computed from the symbol's
window by the family's own target (`market.targets`, the definition training used) and the bar joins
the rolling set of its routed tier and regime (the last `keep` outcomes). Each set is scored with the
target's metrics (`market.scores`: R², MSE and directional accuracy, or balanced accuracy, accuracy and
log loss), for the routed tier and for every other tier on the very same bars, so "what would M0 have
scored on the bars M3 answered?" has a live answer. A bar that slides out of the window before its
horizon passes is never scored. A new family starts the sets afresh: its tiers are other models.

Scores are computed when asked for (/tiers, a scrape), not on every bar. They are the gauges
`tiered_live_quality{tier, regime, scored_tier, metric}` (per worker: every worker follows every symbol
and computes the same values); outcomes count in `tiered_live_outcomes_total{tier, regime}`.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from app.served import Served
from market import scores
from market.candles import Candles
from market.targets import Target


@dataclass(frozen=True)
class Outcome:
    record_id: str
    symbol: str
    ts: int  # the predicted bar's open time, epoch ms
    y: float  # the realised target (a class index for classes)
    outputs: dict[str, np.ndarray]  # tier → its output row on the bar (the routed one and the others)


RECENT = 500  # realised outcomes kept per symbol for GET /symbols/{symbol}/outcomes


@dataclass(frozen=True)
class Recent:
    """A realised outcome as a chart shows it."""

    ts: int
    tier: str
    regime: str
    predicted: float  # the routed tier's prediction: the value, or the likeliest class's index
    realised: float  # the target: the value, or the class's index


Scores = dict[str, dict[str, float | int | None]]  # scored tier → metric → value ("rows": how many)
Realised = Callable[[list[tuple[Served, Outcome]]], None]


class Quality:
    def __init__(self, keep: int, registry: CollectorRegistry) -> None:
        self.keep = keep
        self._pending: dict[str, deque[Served]] = defaultdict(deque)  # by symbol, oldest bar first
        self._windows: dict[str, Candles] = {}
        self._sets: dict[tuple[str, str], deque[Outcome]] = {}  # (routed tier, regime) → last outcomes
        self._scored: dict[tuple[str, str], Scores] = {}  # the sets' scores, until the set changes
        self._unexported: set[tuple[str, str]] = set()  # sets changed since the gauges were last set
        self._recent: dict[str, deque[Recent]] = defaultdict(lambda: deque(maxlen=RECENT))  # by symbol
        self._family_id: str | None = None
        self._target: Target | None = None
        self._listeners: list[Realised] = []
        self.scores = Gauge("tiered_live_quality", "Realised quality of a followed symbol's predictions "
                            "over the last outcomes of a routed tier and regime, scored for each tier on "
                            "the same bars (scored_tier).", ["tier", "regime", "scored_tier", "metric"],
                            registry=registry, multiprocess_mode="liveall")
        self.outcomes = Counter("tiered_live_outcomes", "Followed symbols' predictions joined to their "
                                "realised target, by routed tier and regime.", ["tier", "regime"],
                                registry=registry)

    def listen(self, listener: Realised) -> None:
        """`listener(pairs)` gets each batch of newly realised (record, outcome) pairs."""
        self._listeners.append(listener)

    def on_served(self, records: list[Served]) -> None:
        touched = set()
        for r in records:
            if r.query.symbol is None or not r.query.tracked:
                continue
            if r.family.family_id != self._family_id:
                self._restart(r)
            self._pending[r.query.symbol].append(r)
            touched.add(r.query.symbol)
        for symbol in touched:
            self._resolve(symbol)

    def on_bar(self, symbol: str, window: Candles) -> None:
        self._windows[symbol] = window
        if self._pending.get(symbol):
            self._resolve(symbol)

    def tier(self, name: str) -> dict[str, dict[str, object]]:
        """By regime: the outcomes of bars routed to `name`, and each tier's scores on them."""
        out = {}
        for (tier, regime), outcomes in sorted(self._sets.items()):
            if tier == name and outcomes:
                out[regime] = {"outcomes": len(outcomes), "scores": self._scores((tier, regime))}
        return out

    def recent(self, symbol: str) -> list[Recent]:
        """The symbol's last realised outcomes, oldest first."""
        return list(self._recent.get(symbol, ()))

    def sync(self) -> None:
        """Bring the scores of the sets that changed into the gauges (before a scrape): scoring is done
        when asked for, not on every bar."""
        for key in self._unexported:
            for scored, values in self._scores(key).items():
                for metric, value in values.items():
                    if isinstance(value, float):
                        self.scores.labels(*key, scored, metric).set(value)
        self._unexported.clear()

    # -- internals ----------------------------------------------------------------------------------

    def _restart(self, r: Served) -> None:
        self._family_id, self._target = r.family.family_id, r.family.target
        self._sets.clear()
        self._scored.clear()
        self._unexported.clear()
        self._recent.clear()
        for s in self._pending.values():
            s.clear()
        self.scores.clear()

    def _resolve(self, symbol: str) -> None:
        window, pending, target = self._windows.get(symbol), self._pending[symbol], self._target
        if window is None or target is None or not pending:
            return
        ts, last = window.ts, len(window) - 1
        realised: list[tuple[Served, Outcome]] = []
        while pending:
            r = pending[0]
            bar_ts = r.answer.decision.last_bar_ts
            i = int(np.searchsorted(ts, bar_ts))
            if i > last or ts[i] != bar_ts:  # slid out of the window: never scored
                pending.popleft()
                continue
            if i + target.horizon > last:
                break  # this bar and every later one wait for more bars
            pending.popleft()
            y = target.y(window, np.array([i]))[0]
            outputs = {r.answer.decision.tier: r.answer.output, **r.shadow}
            realised.append((r, Outcome(r.id, symbol, bar_ts, float(y), outputs)))
        self._add(realised)

    def _add(self, realised: list[tuple[Served, Outcome]]) -> None:
        for r, outcome in realised:
            key = (r.answer.decision.tier, r.answer.decision.regime)
            self._sets.setdefault(key, deque(maxlen=self.keep)).append(outcome)
            self._scored.pop(key, None)
            self._unexported.add(key)
            self.outcomes.labels(*key).inc()
            out = r.answer.output
            predicted = float(np.argmax(out)) if r.family.manifest.target.classes else float(out[0])
            self._recent[outcome.symbol].append(Recent(outcome.ts, *key, predicted, outcome.y))
        if realised:
            for listener in self._listeners:
                listener(realised)

    def _scores(self, key: tuple[str, str]) -> Scores:
        if key not in self._scored:
            self._scored[key] = self._score(self._sets[key])
        return self._scored[key]

    def _score(self, outcomes: deque[Outcome]) -> Scores:
        """Each tier's metrics on the outcomes it has an output for (every tier, unless one failed)."""
        assert self._target is not None
        target = self._target
        tiers = {name for o in outcomes for name in o.outputs}
        out: Scores = {}
        for name in sorted(tiers):
            rows = [o for o in outcomes if name in o.outputs]
            pred = np.stack([o.outputs[name] for o in rows])
            y = np.array([o.y for o in rows])
            y = y.astype(np.int64) if target.classes else y
            out[name] = {"rows": len(rows), **scores.score(target, pred, y)}
        return out
