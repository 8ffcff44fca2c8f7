"""The live symbols of one worker: the feeds it follows, each symbol's latest prediction, its subscribers.

    live = await Live.open(settings, plane, metrics)   # ValueError naming a bad or repeated feed
    await live.start()                                 # feeds connect; one task per symbol
    live.latest("BTCUSDT"); live.listing(); live.hub.subscribe("sse")
    await live.stop()

Each symbol's task takes its feed's events in order. A closed bar is predicted (`SymbolPredictor`: the
data plane, the symbol's hysteresis), becomes the symbol's latest update and is published to the hub
(`hub.py`: SSE streams and WebSocket connections); a state change is published too. Bars a feed
recovers over REST after an outage are predicted like live ones and marked `backfilled`: the stream
then has an event for every bar (a client that resumes sees no hole), the hysteresis steps through every
bar in order (so it stays what an uninterrupted follower's would be), and consumers that score or log
predictions get them all; a client that trades only on fresh bars skips `backfilled` ones. A burst of
them yields to the event loop between bars, so requests are served meanwhile.

Symbols are named by the feed's symbol, or by `NAME=` in front of the spec (two feeds on one symbol,
spot and linear, need names): `--feed BTC-SPOT=bybit:spot:BTCUSDT:1`. Every worker process runs its own
`Live` (README, "Several workers").
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter as Tally
from dataclasses import dataclass, field

import msgspec

from app.dataplane import DataPlane
from app.errors import UnknownSymbol
from app.live import views
from app.live.counters import CONSUMER_LAG, LiveCounters
from app.live.hub import TRANSPORTS, Hub, Message
from app.live.predictor import Prediction, SymbolPredictor
from app.live.views import SymbolList, SymbolUpdate
from app.metrics import Metrics
from app.quality import Quality
from app.settings import Settings
from market.errors import MarketError
from market.feeds import BarClosed, BybitSettings, Feed, FeedOptions, FeedState, open_feed
from market.hysteresis import HysteresisSettings

log = logging.getLogger("app.live")
_ENCODE = msgspec.json.Encoder().encode
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
SYNC_SECONDS = 1.0


@dataclass
class Followed:
    name: str
    feed: Feed
    predictor: SymbolPredictor
    latest: SymbolUpdate | None = None  # the last closed bar's update
    predicted_at: float | None = None  # epoch seconds of the last prediction
    received: float | None = None  # epoch seconds the last closed bar arrived
    warned: set[str] = field(default_factory=set)


class Live:
    def __init__(self, followed: dict[str, Followed], plane: DataPlane, metrics: Metrics,
                 settings: Settings, quality: Quality | None = None) -> None:
        self.followed, self.plane, self.grace = followed, plane, settings.live_stale_grace_seconds
        self.quality = quality
        self.counters = LiveCounters(metrics.registry)
        self.hub = Hub(list(followed), settings.live_buffer_events, settings.live_subscriber_queue,
                       self.counters.dropped_subscriber)
        metrics.before_scrape(self.sync)
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, settings: Settings, plane: DataPlane, metrics: Metrics,
                   quality: Quality | None = None) -> Live:
        """The feeds of the settings, not yet started; `quality` scores their predictions when realised."""
        feeds = await open_feeds(settings.feeds, feed_options(settings))
        hysteresis = HysteresisSettings(settings.hysteresis_margin, settings.hysteresis_bars)
        followed = {name: Followed(name, feed, SymbolPredictor(name, hysteresis))
                    for name, feed in feeds.items()}
        return cls(followed, plane, metrics, settings, quality)

    async def start(self) -> None:
        for s in self.followed.values():
            s.feed.start()
            self.counters.following(s.name, up=False)
            self._tasks.append(asyncio.create_task(self._follow(s), name=f"live {s.name}"))
        if self.followed:
            self._tasks.append(asyncio.create_task(self._sync_every(SYNC_SECONDS), name="live counters"))
        for s in self.followed.values():
            log.info("following %s: %s", s.name, s.feed.spec)

    def end_streams(self) -> None:
        """End every subscriber's stream (the service is stopping); the feeds carry on until `stop`."""
        self.hub.close("the service is stopping")

    async def stop(self) -> None:
        self.end_streams()
        await asyncio.gather(*(s.feed.stop("the service stopped") for s in self.followed.values()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- what the endpoints read ---------------------------------------------------------------------

    def symbol(self, name: str) -> Followed:
        if name not in self.followed:
            followed = ", ".join(self.followed) or "none (start the service with --feed or TIERED_FEEDS)"
            raise UnknownSymbol(f"symbol: {name!r} is not followed; followed: {followed}", "symbol")
        return self.followed[name]

    def latest(self, name: str) -> SymbolUpdate:
        """The symbol's last closed bar and its prediction, with the feed's state and staleness now."""
        s = self.symbol(name)
        state, stale = s.feed.status().state, self._stale(s)
        if s.latest is None:
            return views.update(name, s.feed.spec, state, None, False, None, None, stale)
        return msgspec.structs.replace(s.latest, state=views.state_view(state), stale=stale)

    def listing(self) -> SymbolList:
        return SymbolList([views.summary(s.name, s.feed.status(), s.received, self._stale(s),
                                         self.hub.count(s.name)) for s in self.followed.values()])

    def states(self) -> dict[str, FeedState]:
        return {name: s.feed.status().state for name, s in self.followed.items()}

    def sync(self) -> None:
        """Bring the feeds' own counters and the subscriber count into the metrics."""
        for s in self.followed.values():
            self._sync(s)
        connected = Tally(self.hub.transports())
        for transport in TRANSPORTS:
            self.counters.subscribers.labels(transport).set(connected[transport])

    # -- following -----------------------------------------------------------------------------------

    async def _follow(self, s: Followed) -> None:
        async for event in s.feed:
            try:
                if isinstance(event, BarClosed):
                    self._on_bar(s, event)
                else:
                    self.hub.publish(Message("state", s.name, None, _ENCODE(views.state_view(event.state))))
            except Exception:  # a bug here must not end the symbol's task: log it, take the next event
                log.exception("live %s: an event could not be handled", s.name)
            self._sync(s)
            await asyncio.sleep(0)  # a burst of backfilled bars leaves the loop to requests between bars

    def _on_bar(self, s: Followed, event: BarClosed) -> None:
        outcome = s.predictor.on_bar(self.plane, event.window, event.book)
        if self.quality is not None:  # earlier bars whose horizon this bar completes
            self.quality.on_bar(s.name, event.window)
        now = time.time()
        s.received = event.received
        if isinstance(outcome, Prediction):
            s.predicted_at = now
            self._warn_once(s, outcome)
        else:
            log.warning("live %s: no prediction for the bar at %s: %s", s.name,
                        views.iso(int(event.bar.ts[0]) / 1000), outcome.problem)
        s.latest = views.update(s.name, s.feed.spec, s.feed.status().state, event.bar, event.backfilled,
                                outcome, now, self._stale(s))
        self.counters.predicted(s.name, outcome.held if isinstance(outcome, Prediction) else None)
        self.hub.publish(Message("bar", s.name, int(event.bar.ts[0]), _ENCODE(s.latest)))

    def _warn_once(self, s: Followed, outcome: Prediction) -> None:
        if "order_flow" in outcome.answer.decision.estimated and "order_flow" not in s.warned:
            s.warned.add("order_flow")
            log.warning("live %s: its bars carry no taker-buy volume but family %s was trained with it; the "
                        "order-flow inputs are estimated from each bar's close location, and every answer "
                        "says so in regime.estimated", s.name, outcome.answer.decision.family_id)

    def _sync(self, s: Followed) -> None:
        """The feed's counters into the metrics; what it refused since the last sync into the log (one line
        per symbol per sync, so a flood of bad frames is a line a second, not a line a frame)."""
        status = s.feed.status()
        dropped = self.counters.sync(s.name, status)
        if dropped:
            counts = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))
            refused = dropped.keys() - {CONSUMER_LAG} and status.last_drop
            log.warning("live %s: dropped %s (%s)%s", s.name, counts, s.feed.spec,
                        f"; the last input refused: {status.last_drop}" if refused else "")

    def _stale(self, s: Followed) -> bool:
        return views.is_stale(s.predicted_at, s.feed.cadence, self.grace)

    async def _sync_every(self, seconds: float) -> None:
        while True:  # inputs a feed drops produce no event: counted here within a second
            await asyncio.sleep(seconds)
            self.sync()


async def open_feeds(specs: list[str], options: FeedOptions) -> dict[str, Feed]:
    """[NAME=]SPEC items → feeds by symbol name, not started; ValueError naming a bad or repeated one."""
    feeds: dict[str, Feed] = {}
    try:
        for item in specs:
            name, sep, rest = item.partition("=")
            named = bool(sep) and _NAME.fullmatch(name) is not None
            feed = open_feed(rest if named else item, options)
            key = name if named else feed.symbol
            if key in feeds:
                raise ValueError(f"feeds {feeds[key].spec} and {feed.spec} both follow {key}; name one, "
                                 f"e.g. --feed {key}-2={feed.spec}")
            feeds[key] = feed
    except (ValueError, OSError, MarketError) as e:  # a bad spec, an unreadable or invalid replay file
        await asyncio.gather(*(f.stop() for f in feeds.values()))
        raise ValueError(str(e)) from None
    return feeds


def feed_options(s: Settings) -> FeedOptions:
    bybit = BybitSettings(ws_url=s.bybit_ws_url, rest_url=s.bybit_rest_url,
                          ping_interval=s.bybit_ping_seconds, pong_timeout=s.bybit_pong_timeout_seconds,
                          silence=s.bybit_silence_seconds, backoff=s.bybit_backoff_seconds,
                          max_backoff=s.bybit_max_backoff_seconds)
    return FeedOptions(capacity=s.live_window_bars, bybit=bybit)


async def check(settings: Settings) -> None:
    """Open the settings' feeds and release them: ValueError naming a bad one, before any worker starts."""
    feeds = await open_feeds(settings.feeds, feed_options(settings))
    await asyncio.gather(*(f.stop() for f in feeds.values()))
