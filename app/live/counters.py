"""Prometheus metrics of the live symbols: what the feeds saw, what was predicted, who was dropped.

A feed keeps running totals of its own (`market.feeds.Counters`); `sync` turns what changed since the
last sync into increments of the counters below, so the values live in prometheus-client and are summed
over workers like every other metric (`app/metrics.py`). The follower syncs after every event and once
a second, and the scrape of this process syncs first, so /metrics is current here.

Every worker follows every feed (README, "Several workers"), so a bar followed by N workers is counted N
times, as are its reconnects, gaps and backfills: each worker has its own connection and does that
work. `tiered_feed_followers` says how many workers follow a symbol now, so
`rate(tiered_feed_bars_total[5m]) / tiered_feed_followers` is the symbol's own bar rate.
`tiered_feed_up` is the minimum over live workers: 1 only while every worker's feed is live.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from market.feeds import Counters, SymbolStatus

CONSUMER_LAG = "consumer_lag"  # events the feed dropped because the service had not taken them in time


class LiveCounters:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.bars = Counter("tiered_feed_bars", "Closed bars received, by symbol and source (live: pushed; "
                            "backfill: recovered over REST after an outage).", ["symbol", "source"],
                            registry=r)
        self.reconnects = Counter("tiered_feed_reconnects", "Connections to the exchange made again after "
                                  "one ended.", ["symbol"], registry=r)
        self.gaps = Counter("tiered_feed_gaps", "Closed bars that arrived after a missing one.", ["symbol"],
                            registry=r)
        self.backfills = Counter("tiered_feed_backfills", "REST backfills, by outcome (ok, failed).",
                                 ["symbol", "outcome"], registry=r)
        self.dropped = Counter("tiered_feed_dropped", "Exchange inputs refused (malformed, non_numeric, "
                               "out_of_order, ...) and events the service took too late (consumer_lag).",
                               ["symbol", "reason"], registry=r)
        self.up = Gauge("tiered_feed_up", "1 while the symbol's feed is live in every worker, else 0.",
                        ["symbol"], registry=r, multiprocess_mode="livemin")
        self.followers = Gauge("tiered_feed_followers", "Workers following the symbol.", ["symbol"],
                               registry=r, multiprocess_mode="livesum")
        self.predictions = Counter("tiered_live_predictions", "Closed bars predicted, by symbol and whether "
                                   "hysteresis held the regime.", ["symbol", "held"], registry=r)
        self.unpredicted = Counter("tiered_live_unpredicted", "Closed bars that could not be predicted (the "
                                   "window too short, an answer refused).", ["symbol"], registry=r)
        self.subscribers = Gauge("tiered_live_subscribers", "Subscribers connected, by transport (sse, ws).",
                                 ["transport"], registry=r, multiprocess_mode="livesum")
        self.subscribers_dropped = Counter("tiered_live_subscribers_dropped", "Subscribers dropped, by "
                                           "transport and reason (queue_full: the client read too slowly).",
                                           ["transport", "reason"], registry=r)
        self._seen: dict[str, tuple[Counters, int]] = {}

    def following(self, symbol: str, up: bool) -> None:
        self.followers.labels(symbol).set(1)
        self.up.labels(symbol).set(int(up))

    def sync(self, symbol: str, status: SymbolStatus) -> dict[str, int]:
        """Count what the feed has seen since the last sync; returns the inputs dropped since, by reason."""
        now, lag = status.counters, status.events_dropped
        before, lag_before = self._seen.get(symbol, (Counters(), 0))
        self._seen[symbol] = (now, lag)
        pushed = (now.bars - now.backfilled) - (before.bars - before.backfilled)
        steps = ((self.bars.labels(symbol, "live"), pushed),
                 (self.bars.labels(symbol, "backfill"), now.backfilled - before.backfilled),
                 (self.reconnects.labels(symbol), now.reconnects - before.reconnects),
                 (self.gaps.labels(symbol), now.gaps - before.gaps),
                 (self.backfills.labels(symbol, "ok"), now.backfills - before.backfills),
                 (self.backfills.labels(symbol, "failed"), now.backfill_failures - before.backfill_failures),
                 (self.dropped.labels(symbol, CONSUMER_LAG), lag - lag_before),
                 *((self.dropped.labels(symbol, reason), n - before.dropped.get(reason, 0))
                   for reason, n in now.dropped.items()))
        for counter, delta in steps:
            if delta > 0:
                counter.inc(delta)
        self.up.labels(symbol).set(int(status.state.status == "live"))
        fresh = {reason: n - before.dropped.get(reason, 0) for reason, n in now.dropped.items()}
        if lag > lag_before:
            fresh[CONSUMER_LAG] = lag - lag_before
        return {reason: n for reason, n in fresh.items() if n > 0}

    def predicted(self, symbol: str, held: bool | None) -> None:
        """One bar's outcome; `held` None when it could not be predicted."""
        if held is None:
            self.unpredicted.labels(symbol).inc()
        else:
            self.predictions.labels(symbol, str(held).lower()).inc()

    def joined(self, transport: str, change: int) -> None:
        self.subscribers.labels(transport).inc(change)

    def dropped_subscriber(self, transport: str, reason: str) -> None:
        self.subscribers_dropped.labels(transport, reason).inc()
