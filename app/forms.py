"""The three forms a window takes in a request body, each turned into the same domain `Query`.

  * candle objects, oldest first: `"candles": [{"ts", "open", "high", "low", "close", "volume",
    "taker_buy_volume"?}, ...]`, taker-buy volume on every candle or on none;
  * columns, oldest first: `"candles": {"ts": [...], "open": [...], ..., "taker_buy_volume": [...]?}`,
    every column as long as `ts`;
  * Bybit's kline list, `"bybit_kline": [["startTime", "open", "high", "low", "close", "volume",
    "turnover"], ...]`, exactly as GET /v5/market/kline returns it in `result.list`: newest first,
    numbers as strings (numbers as numbers work too), turnover ignored, no taker-buy volume. Bybit's
    newest row may be the candle still forming. The list cannot tell, the clock can: the newest row is
    left out when its start plus one interval is later than `bybit_time` (the response's `time`, which
    a client forwards for an exact answer; default: this server's clock). The interval is
    `bybit_interval` when given (needed for monthly candles, whose length varies) and otherwise the
    list's smallest step between rows. Only the newest row is ever left out (`market.bybit.newest_is_open`).

Each becomes a (7, n) float64 array, oldest first, and the `Names` that point messages at the element
as the client sent it: `candles[5].high`, `candles.high[5]`, `bybit_kline[42][2]`. The values are
checked afterwards by the same rules, whatever the form (`app/windows.py`).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from app.dataplane import Query
from app.errors import InvalidInput
from app.windows import BYBIT_COLUMNS, COLUMNS, Names, Window, book_signals
from market.bybit import newest_is_open

MAX_LATENCY_MS = 60_000.0

_OHLCV = operator.attrgetter(*COLUMNS[:6])
_ALL = operator.attrgetter(*COLUMNS)
_NO_BOOK = (float("nan"), float("nan"))


def query(request: Any, now_ms: Callable[[], int], prefix: str = "") -> Query:
    """The domain query of a decoded PredictRequest (`app.wire.types`)."""
    if (request.candles is None) == (request.bybit_kline is None):
        name = f"{prefix}candles"
        raise InvalidInput(f"{name}: it is required, or bybit_kline, not both: send the window as candle "
                           "objects, as columns or as Bybit's kline list", name)
    dropped = False
    if request.bybit_kline is not None:
        names = Names("bybit", prefix, len(request.bybit_kline))
        now = request.bybit_time if request.bybit_time is not None else now_ms()
        candles, dropped = _bybit(request.bybit_kline, names, request.bybit_interval, now)
        taker = False
    else:
        for extra in ("bybit_interval", "bybit_time"):
            if getattr(request, extra) is not None:
                raise InvalidInput(f"{prefix}{extra}: it applies to bybit_kline only; remove it",
                                   f"{prefix}{extra}")
        if isinstance(request.candles, list):
            names = Names("objects", prefix)
            candles, taker = _objects(request.candles, names)
        else:
            names = Names("columns", prefix)
            candles, taker = _columns(request.candles, names)
    book = request.book
    spread, imbalance = _NO_BOOK if book is None else book_signals(book.bids, book.asks, prefix)
    budget = request.max_latency_ms
    if budget is not None and not 0 < budget <= MAX_LATENCY_MS:  # NaN fails the comparison too
        name = f"{prefix}max_latency_ms"
        raise InvalidInput(f"{name} is {budget!r}; send a finite number of milliseconds, greater than 0 and "
                           f"at most {MAX_LATENCY_MS:g}", name)
    return Query(Window(candles, names, taker, spread, imbalance, dropped), request.tier, budget)


def _objects(rows: list[Any], names: Names) -> tuple[np.ndarray, bool]:
    n = len(rows)
    out = np.empty((7, n), dtype=np.float64)
    taker = n > 0 and rows[0].taker_buy_volume is not None
    # One pass over the candles (the cheapest conversion measured); numpy reads a None as NaN.
    flat = np.fromiter(itertools.chain.from_iterable(map(_ALL if taker else _OHLCV, rows)), np.float64,
                       (7 if taker else 6) * n)
    mixed = np.isnan(flat[6::7]).any() and any(c.taker_buy_volume is None for c in rows) if taker \
        else any(c.taker_buy_volume is not None for c in rows)
    if mixed:
        row = next(i for i, c in enumerate(rows) if (c.taker_buy_volume is not None) != taker)
        field = f"{names.prefix}candles[{row}].taker_buy_volume"
        raise InvalidInput(f"{field}: give taker_buy_volume on every candle or on none", field)
    if taker:
        out[:] = flat.reshape(n, 7).T
    else:
        out[:6] = flat.reshape(n, 6).T
        out[6] = np.nan
    return out, taker


def _columns(columns: Any, names: Names) -> tuple[np.ndarray, bool]:
    n = len(columns.ts)
    for name in COLUMNS[1:]:
        values = getattr(columns, name)
        if values is not None and len(values) != n:
            field = f"{names.prefix}candles.{name}"
            raise InvalidInput(f"{field}: {len(values)} values, but candles.ts has {n}; give every column "
                               "the same length", field)
    out = np.empty((7, n), dtype=np.float64)
    taker = columns.taker_buy_volume is not None
    # One pass over the six lists (cheaper than numpy's conversion of a tuple of lists, measured).
    out[:6] = np.fromiter(itertools.chain(*_OHLCV(columns)), np.float64, 6 * n).reshape(6, n)
    out[6] = columns.taker_buy_volume if taker else np.nan
    return out, taker


def _bybit(rows: list[list[str | float]], names: Names, interval: str | None,
           now_ms: int) -> tuple[np.ndarray, bool]:
    n = len(rows)
    try:  # Python's float() reads Bybit's strings faster than numpy's own parser (measured)
        table = np.fromiter(map(float, itertools.chain.from_iterable(rows)), np.float64, 7 * n).reshape(n, 7)
    except ValueError:
        raise _not_a_number(rows, names) from None
    dropped = newest_is_open(table[:, 0], now_ms, interval)
    kept = table[1:] if dropped else table
    out = np.empty((7, len(kept)), dtype=np.float64)
    out[:6] = kept[::-1, :6].T
    out[6] = np.nan
    return out, dropped


def _not_a_number(rows: list[list[str | float]], names: Names) -> InvalidInput:
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            try:
                float(value)
            except ValueError:
                field = f"{names.prefix}bybit_kline[{i}][{j}]"
                return InvalidInput(f"{field} ({BYBIT_COLUMNS[j]}) is not a number (got {value!r}); send "
                                    "numbers, as strings the way Bybit does (\"43376.1\") or as numbers",
                                    field)
    return InvalidInput(f"{names.window}: a value is not a number; send numbers", names.window)
