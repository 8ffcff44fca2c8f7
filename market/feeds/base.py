"""A feed: one symbol's source of closed bars, run as a task on the caller's asyncio loop.

    async with feed:                  # start(): run() becomes a task on the running loop
        async for event in feed:      # BarClosed / StateChanged, in order, from its outbox
            ...
        feed.status()                 # SymbolStatus: state, counters, window size, last bar, book
    # leaving the block: stop() cancels the task, the state becomes stopped, the outbox closes

A subclass implements `run()` (connect, read, reconnect, ...) and reports through `self.track`
(market/feeds/track.py). The base owns the task: a `run()` that returns ends the feed (a replay at the
end of its file); one that raises is logged and ends it, the error becoming the stopped state's
reason, so nothing a feed does can raise into its consumer.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Self

from market.candles import Book, Candles
from market.feeds.events import SymbolStatus
from market.feeds.outbox import Outbox
from market.feeds.track import SymbolTrack

DEFAULT_CAPACITY = 500  # bars per window: one REST page (Bybit serves up to 1000 a call)
logger = logging.getLogger("market.feeds")


class Feed(ABC):
    kind: ClassVar[str]

    def __init__(self, spec: str, symbol: str, interval: str, interval_ms: int,
                 next_open: Callable[[int], int], *, capacity: int = DEFAULT_CAPACITY,
                 outbox: Outbox | None = None, book_max_age: float = 10.0) -> None:
        self._owns_outbox = outbox is None
        self.outbox = Outbox() if outbox is None else outbox
        self.track = SymbolTrack(spec, symbol, interval, interval_ms, capacity, next_open, self.outbox,
                                 book_max_age)
        self._task: asyncio.Task[None] | None = None
        self._stop_reason = "stopped"
        # Wall-clock seconds between two bars in normal operation (a replay sets its own pace): what a
        # consumer waits for before calling a symbol stale.
        self.cadence = interval_ms / 1000

    @property
    def spec(self) -> str:
        return self.track.spec

    @property
    def symbol(self) -> str:
        return self.track.symbol

    def status(self) -> SymbolStatus:
        return self.track.status()

    def window(self) -> Candles:
        """The rolling window now, oldest first (read-only; later bars never change it)."""
        return self.track.window.candles()

    def book(self) -> Book | None:
        """The latest top of book if it is fresh, else None."""
        return self.track.fresh_book()

    @abstractmethod
    async def run(self) -> None:
        """Follow the source until cancelled (or, for a finite source, to its end)."""

    async def close(self) -> None:  # noqa: B027 (most feeds hold nothing to release)
        """Release what the feed holds (connections, clients); called once when it ends."""

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"feed {self.spec} was already started; make a new one to follow it again")
        self._task = asyncio.get_running_loop().create_task(self._main(), name=f"feed {self.spec}")

    async def stop(self, reason: str = "stopped") -> None:
        self._stop_reason = reason
        if self._task is None:  # never started: release what it holds all the same
            await self.close()
            self._finish()
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def wait(self) -> None:
        """Until the feed has ended (a finite source at its end, or after stop())."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _main(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("feed %s failed", self.spec)
            self._stop_reason = f"failed: {exc!r}"
        finally:
            await self.close()
            self._finish()

    def _finish(self) -> None:
        if not self.track.stopped:
            self.track.stop(self._stop_reason)
        if self._owns_outbox:
            self.outbox.close()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.stop()

    def __aiter__(self) -> Outbox:
        return self.outbox
