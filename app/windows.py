"""From validated requests to feature rows, checking the rules that relate values to each other.

pydantic has already checked every single value (`app/schemas.py`). Here the requests of one call are
laid end to end as one candle series, so the market package's own invariants (`Candles.validate`) run
once for all of them, and the windows are cut from that series with `features.sliding_windows`, the
very function the training set is built with; each order book goes through `Book.validate`. The
feature pipeline then runs once for the whole call.

Every failure is an InvalidInput naming the field (`items[2].candles[7].high`) and the fix. With
`isolate`, a bad request only fails itself (the coalesced /predict calls of one event-loop turn);
without it the first bad request fails the call (/predict/batch).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from app.errors import InvalidInput
from app.schemas import OrderBook, PredictRequest
from market.candles import Book, Candles
from market.errors import BookError, CandleError
from market.features import FEATURE_NAMES, SIGNAL_NAMES, Features, compute, sliding_windows

_ROW = re.compile(r"^row (\d+) ")
_CANDLE_FIXES = {
    "high": "high must be ≥ max(open, close)",
    "low": "low must be ≤ min(open, close)",
    "ts": "timestamps must increase strictly, oldest candle first",
}


@dataclass(frozen=True)
class Prepared:
    features: Features  # one row per accepted request
    items: list[int]  # the request index of each row
    errors: dict[int, InvalidInput]  # request index → why it was refused (only with isolate)


@dataclass
class _Series:
    """Columns of the accepted requests' candles laid end to end."""

    items: list[int]
    lengths: list[int]
    columns: tuple[list[float], ...]  # ts, open, high, low, close, volume, taker_buy_volume (NaN: none)
    books: list[Book | None]


def prepare(requests: list[PredictRequest], prefixes: list[str], min_candles: int, max_candles: int,
            use_book: bool, isolate: bool) -> Prepared:
    errors: dict[int, InvalidInput] = {}

    def refuse(i: int, error: InvalidInput) -> None:
        if not isolate:
            raise error
        errors[i] = error

    accepted: list[tuple[int, Book | None]] = []
    for i, request in enumerate(requests):
        try:
            _check_counts(request, min_candles, max_candles, prefixes[i])
            accepted.append((i, None if request.book is None else _book(request.book, prefixes[i])))
        except InvalidInput as e:
            refuse(i, e)
    while accepted:
        series = _series(requests, accepted)
        try:
            candles = _validated(series)
            break
        except _BadRow as bad:
            i, _ = accepted.pop(bad.position)
            refuse(i, _row_error(bad.error, bad.row, prefixes[i]))
    else:
        return Prepared(_NO_FEATURES, [], errors)
    ends = np.cumsum(series.lengths) - 1
    spread, imbalance = np.full(len(candles), np.nan), np.full(len(candles), np.nan)
    for end, book in zip(ends, series.books, strict=True):
        if book is not None:
            spread[end], imbalance[end] = book.spread_bps, book.imbalance
    # Extreme (but individually valid) values can overflow inside the pipeline; such rows are refused
    # just below, so numpy need not warn about them.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f = compute(sliding_windows(candles, ends, spread, imbalance), use_book=use_book)
    finite = np.isfinite(f.x).all(axis=1)
    for row in np.flatnonzero(~finite):
        i = series.items[row]
        field = f"{prefixes[i]}candles"
        refuse(i, InvalidInput(f"{field}: the window's features overflow float32 (values span too wide "
                               "a range); check the units of prices and volumes", field))
    if not finite.all():
        f = Features(f.x[finite], f.signals[finite], f.spread_estimated[finite],
                     f.imbalance_estimated[finite])
    return Prepared(f, [i for i, ok in zip(series.items, finite, strict=True) if ok], errors)


def _check_counts(request: PredictRequest, min_candles: int, max_candles: int, prefix: str) -> None:
    rows, field = request.candles, f"{prefix}candles"
    if len(rows) < min_candles:
        raise InvalidInput(f"{field}: got {len(rows)} candles; this family needs at least {min_candles}, "
                           "oldest first", field)
    if len(rows) > max_candles:
        raise InvalidInput(f"{field}: got {len(rows)} candles; send at most {max_candles} "
                           "(TIERED_MAX_CANDLES); only the last window is used", field)
    has_tbv = [c.taker_buy_volume is not None for c in rows]
    if any(has_tbv) and not all(has_tbv):
        name = f"{field}[{has_tbv.index(not has_tbv[0])}].taker_buy_volume"
        raise InvalidInput(f"{name}: give taker_buy_volume on every candle or on none", name)


def _book(book: OrderBook, prefix: str) -> Book:
    try:
        return Book.from_levels(book.bids, book.asks).validate()
    except BookError as e:
        name = f"{prefix}book.{e.field}"
        raise InvalidInput(f"{name}: {e.problem}; the best bid must be below the best ask, prices > 0, "
                           "sizes ≥ 0", name) from None


def _series(requests: list[PredictRequest], accepted: list[tuple[int, Book | None]]) -> _Series:
    columns: tuple[list[float], ...] = ([], [], [], [], [], [], [])
    ts, open_, high, low, close, volume, tbv = columns
    lengths = []
    for i, _ in accepted:
        rows = requests[i].candles
        lengths.append(len(rows))
        ts += [c.ts for c in rows]
        open_ += [c.open for c in rows]
        high += [c.high for c in rows]
        low += [c.low for c in rows]
        close += [c.close for c in rows]
        volume += [c.volume for c in rows]
        tbv += [np.nan if c.taker_buy_volume is None else c.taker_buy_volume for c in rows]
    return _Series([i for i, _ in accepted], lengths, columns, [b for _, b in accepted])


class _BadRow(Exception):
    def __init__(self, error: CandleError, position: int, row: int | None) -> None:
        self.error, self.position, self.row = error, position, row


def _validated(series: _Series) -> Candles:
    """The joined series after `Candles.validate`; _BadRow says which request and row broke it."""
    ts = np.asarray(series.columns[0], dtype=np.int64)
    lengths = np.asarray(series.lengths)
    starts = np.cumsum(lengths) - lengths
    # Re-base each request's timestamps to start just after the previous request's last one, so the
    # joined series increases exactly when every request's own series does (spans ≤ 2^53 each, and a
    # call holds at most 1,000 requests, so int64 cannot overflow).
    first, span = ts[starts], ts[starts + lengths - 1] - ts[starts]
    base = np.cumsum(np.maximum(span, 0) + 1) - (np.maximum(span, 0) + 1)
    rebased = ts - np.repeat(first - base, lengths)
    _, *prices, tbv = series.columns
    candles = Candles.from_arrays(rebased, *prices)
    try:
        candles.validate()
    except CandleError as e:
        match = _ROW.match(e.problem)
        row = int(match.group(1)) if match else None
        position = int(np.searchsorted(starts, row, side="right") - 1) if row is not None else 0
        local = None if row is None else row - int(starts[position])
        raise _BadRow(e, position, local) from None
    return dataclasses.replace(candles, taker_buy_volume=np.asarray(tbv, dtype=np.float64))


def _row_error(e: CandleError, row: int | None, prefix: str) -> InvalidInput:
    name = f"{prefix}candles[{row}].{e.field}" if row is not None else f"{prefix}candles.{e.field}"
    match = _ROW.match(e.problem)
    problem = e.problem[match.end():] if match else e.problem
    return InvalidInput(f"{name} {problem}; {_CANDLE_FIXES.get(e.field, 'check the value')}", name)


_NO_FEATURES = Features(np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32), np.zeros((0, len(SIGNAL_NAMES))),
                        np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
