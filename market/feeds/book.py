"""An order book kept from Bybit's snapshot and delta frames, read as its top of book.

Rules (bybit-exchange/docs orderbook.mdx, summarised in shared/data/bybit/ws/README.md): a snapshot
replaces the book, and so does a delta with `u` = 1 (the service restarted); in a delta a size of 0
deletes the level, an unknown price inserts it, a known price updates it. Level 1 on linear, inverse
and spot sends snapshots only (re-sent every 3 s without change); deltas are handled for deeper books.
The top of book is checked by `Book.validate` (both sides present, positive prices, bid below ask):
a book that fails is forgotten until the next snapshot, never handed out.
"""

from __future__ import annotations

from market.candles import Book
from market.errors import BookError
from market.feeds.events import DELTA_BEFORE_SNAPSHOT, INVALID_BOOK
from market.feeds.frames import BookUpdate


class LocalBook:
    def __init__(self) -> None:
        self._bids: dict[float, float] | None = None  # price → size; None until a snapshot
        self._asks: dict[float, float] = {}

    def apply(self, update: BookUpdate) -> Book | tuple[str, str]:
        """The top of book after `update`, or (drop reason, detail) when it cannot be used."""
        if update.kind == "snapshot" or update.update_id == 1:
            self._bids, self._asks = {}, {}
        elif self._bids is None:
            return DELTA_BEFORE_SNAPSHOT, f"{update.topic} delta u={update.update_id}"
        bids, asks = self._bids, self._asks
        for levels, side in ((update.bids, bids), (update.asks, asks)):
            for price, size in levels:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size
        top_bid = [[price, bids[price]] for price in [max(bids)]] if bids else []
        top_ask = [[price, asks[price]] for price in [min(asks)]] if asks else []
        try:
            return Book.from_levels(top_bid, top_ask, update.ts).validate()
        except BookError as exc:
            self._bids = None  # inconsistent: wait for the next snapshot
            return INVALID_BOOK, f"{update.topic} u={update.update_id}: {exc}"
