"""Market windows as the data plane takes them, and every rule a window must satisfy before it reaches
the feature pipeline.

A transport decodes its body into `Window`s: the candles as a (7, n) float64 array, oldest bar first,
and `Names`, how that body names each element, so that a message points at what the client sent:
`candles[5].high` (candle objects), `candles.high[5]` (columns), `bybit_kline[42][2]` (Bybit's
kline list, newest first) or `WINDOW[0][5][1] (high)` (the routed model's tensor, `app/routed.py`).
`prepare` checks every window of a call at once, vectorised over the windows laid end to end, and
reports for each window the first rule it breaks at its first row:

  1. enough candles for the family's window (the decoder already capped them at TIERED_MAX_CANDLES);
  2. each value on its own: timestamps whole epoch milliseconds in [0, 2^53) (exact in a JSON double),
     finite numbers, prices > 0, volumes ≥ 0 (the market's own rules, `Candles.violations`), every
     value within float32's range (the models' input type);
  3. values against each other (`Candles.violations` again): high ≥ max(open, close) ≥ min(open,
     close) ≥ low, taker-buy volume ≤ volume, timestamps strictly increasing;
  4. the window's features finite: extreme but valid values can still overflow float32 in the pipeline.
A window that breaks a rule fails alone; the others of the call are served (`Prepared.rows`).
`book_signals` checks an order book the same way and reduces it to the two signals the features read.
`from_candles` makes a window of bars a feed already validated (a followed symbol's, `app/live`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.errors import InvalidInput
from market.candles import Book, Candles, top_signals
from market.features import FEATURE_NAMES, SIGNAL_NAMES, Features, compute, sliding_windows

F32_MAX = 3.4028234663852886e38
MAX_TS = 2**53  # epoch ms, exclusive: far beyond any real date; below it a JSON double is exact
COLUMNS = ("ts", "open", "high", "low", "close", "volume", "taker_buy_volume")
TS, TBV = 0, 6
BYBIT_COLUMNS = ("startTime", "open", "high", "low", "close", "volume", "turnover")
Form = Literal["objects", "columns", "bybit", "tensor"]
TENSOR, TS_TENSOR = "WINDOW", "TS"  # the routed model's inputs: [B, W, 5 or 6] prices and volumes, [B, W] ts


@dataclass(frozen=True)
class Names:
    """How a request body names the elements of one window (for messages)."""

    form: Form
    prefix: str = ""  # "items[2]." inside a batch
    body_rows: int = 0  # bybit: the rows of the list as sent, the still-open candle included
    index: int = 0  # tensor: the window's row in the batch dimension

    @property
    def window(self) -> str:
        if self.form == "tensor":
            return f"{TENSOR}[{self.index}]"
        return f"{self.prefix}{'bybit_kline' if self.form == 'bybit' else 'candles'}"

    def element(self, column: str, row: int) -> tuple[str, str]:
        """The field and the label (field plus the column's name where the field has none) of the value
        of `column` at window row `row`, oldest first."""
        if self.form == "objects":
            field = f"{self.prefix}candles[{row}].{column}"
        elif self.form == "columns":
            field = f"{self.prefix}candles.{column}[{row}]"
        elif self.form == "tensor":  # ts is its own tensor; the others are WINDOW's last axis
            if column == "ts":
                return (f"{TS_TENSOR}[{self.index}][{row}]",) * 2
            field = f"{TENSOR}[{self.index}][{row}][{COLUMNS.index(column) - 1}]"
            return field, f"{field} ({column})"
        else:  # newest first: window row r is list row n - 1 - r, a dropped open candle or not
            j = COLUMNS.index(column)
            field = f"{self.prefix}bybit_kline[{self.body_rows - 1 - row}][{j}]"
            return field, f"{field} ({BYBIT_COLUMNS[j]})"
        return field, field

    def order_rule(self) -> tuple[str, str]:
        """(problem, rule) of a timestamp out of order, in the words of this form."""
        if self.form == "bybit":
            return ("is not after the startTime of the row below it",
                    "Bybit's list is newest first: each startTime must be later than the next row's")
        return "is not after the previous timestamp", "timestamps must increase strictly, oldest candle first"


@dataclass(frozen=True)
class Window:
    """One market window: its candles and, when the client sent a book, the book's two signals."""

    candles: np.ndarray  # (7, n) float64 by COLUMNS, oldest first; taker-buy all NaN when not given
    names: Names
    taker_volume: bool  # whether the client gave taker-buy volume
    spread_bps: float = float("nan")  # NaN: no book
    imbalance: float = float("nan")
    dropped_open_candle: bool = False  # bybit: the list's newest row had not closed and is not used


def from_candles(candles: Candles, book: Book | None, names: Names) -> Window:
    """A window of validated bars (and the book that came with the last one) as the data plane takes it."""
    taker = candles.taker_buy_volume
    table = np.vstack([candles.ts.astype(np.float64), candles.open, candles.high, candles.low, candles.close,
                       candles.volume, np.full(len(candles), np.nan) if taker is None else taker])
    spread, imbalance = (float("nan"), float("nan")) if book is None else (book.spread_bps, book.imbalance)
    return Window(table, names, taker is not None, spread, imbalance)


@dataclass(frozen=True)
class Prepared:
    """The features of the windows that passed every rule, and each window's fate."""

    features: Features  # one row per accepted window
    rows: list[int | InvalidInput]  # per window: its row in `features`, or why it was refused
    last_ts: np.ndarray  # (len(features),) int64 open time of each accepted window's last bar


def prepare(windows: list[Window], min_candles: int, use_book: bool) -> Prepared:
    refused: dict[int, InvalidInput] = {}
    for i, w in enumerate(windows):
        if w.candles.shape[1] < min_candles:
            dropped = " closed" if w.dropped_open_candle else ""
            refused[i] = InvalidInput(f"{w.names.window}: got {w.candles.shape[1]}{dropped} candles; this "
                                      f"family needs at least {min_candles}, oldest first", w.names.window)
    live = [i for i in range(len(windows)) if i not in refused]
    if not live:
        return _refused_all(len(windows), refused)
    joined = np.concatenate([windows[i].candles for i in live], axis=1) if len(live) > 1 \
        else windows[live[0]].candles
    lengths = np.array([windows[i].candles.shape[1] for i in live])
    starts = np.cumsum(lengths) - lengths
    owner = np.repeat(np.arange(len(live)), lengths)
    for column, rows, problem, rule in _violations(joined, starts, [windows[i] for i in live]):
        owners, first = np.unique(owner[rows], return_index=True)
        for k, row in zip(owners.tolist(), rows[first].tolist(), strict=True):
            i = live[k]
            if i not in refused:
                refused[i] = _element_error(windows[i], column, row - int(starts[k]), problem, rule)
    return _features(windows, refused, joined, starts + lengths - 1, live, use_book)


def _violations(joined: np.ndarray, starts: np.ndarray,
                windows: list[Window]) -> list[tuple[str, np.ndarray, str, str | None]]:
    """(column, rows of `joined`, problem, rule) for every broken rule, the rules of single values before
    the relations between values. A rule of None: the form's own words (a timestamp out of order)."""
    values: list[tuple[str, np.ndarray, str, str | None]] = []
    relations: list[tuple[str, np.ndarray, str, str | None]] = []
    ts = joined[TS]  # comparisons with NaN are False and silent: no errstate needed
    _add(values, "ts", ~((ts >= 0) & (ts < MAX_TS) & (np.floor(ts) == ts)),
         "is not a whole number of milliseconds in [0, 2^53)",
         "send the bar's open time in epoch milliseconds")
    given = [w.taker_volume for w in windows]
    # Windows without taker volume carry NaN there; 0 satisfies every rule on them.
    tbv = joined[TBV] if all(given) else None if not any(given) else \
        np.where(np.repeat(given, [w.candles.shape[1] for w in windows]), joined[TBV], 0.0)
    # Timestamps stay float64 here: only compared; the features get them as int64 once they passed.
    market = Candles(ts, joined[1], joined[2], joined[3], joined[4], joined[5], tbv)
    for v in market.violations():
        # Each window's first row follows another window's last: not an order violation.
        rows = np.setdiff1d(v.rows, starts, assume_unique=True) if v.field == "ts" else v.rows
        if rows.size:
            (relations if v.relation else values).append(
                (v.field, rows, v.problem, None if v.field == "ts" else v.rule))
    beyond = np.abs(joined[1:7]) > F32_MAX
    if beyond.any():
        for j in range(1, 7):
            _add(values, COLUMNS[j], beyond[j - 1], "is beyond float32's range",
                 f"values must be less than or equal to {F32_MAX} (the models' input is float32)")
    return values + relations


def _add(out: list[tuple[str, np.ndarray, str, str | None]], column: str, mask: np.ndarray, problem: str,
         rule: str) -> None:
    rows = np.flatnonzero(mask)
    if rows.size:
        out.append((column, rows, problem, rule))


def _element_error(w: Window, column: str, row: int, problem: str, rule: str | None) -> InvalidInput:
    if rule is None:
        problem, rule = w.names.order_rule()
    field, label = w.names.element(column, row)
    value = float(w.candles[COLUMNS.index(column), row])
    whole_ms = column == "ts" and np.isfinite(value) and value == np.floor(value)
    shown = f"{int(value)}" if whole_ms else f"{value!r}"
    return InvalidInput(f"{label} {problem} (got {shown}); {rule}", field)


def _features(windows: list[Window], refused: dict[int, InvalidInput], joined: np.ndarray, ends: np.ndarray,
              live: list[int], use_book: bool) -> Prepared:
    accepted = [k for k, i in enumerate(live) if i not in refused]
    if not accepted:
        return _refused_all(len(windows), refused)
    with np.errstate(invalid="ignore"):  # refused windows may hold NaN or huge timestamps: never read
        ts = joined[TS].astype(np.int64)
    candles = Candles(ts, *joined[1:7])
    kept = [live[k] for k in accepted]
    spread = np.array([windows[i].spread_bps for i in kept])
    imbalance = np.array([windows[i].imbalance for i in kept])
    # Extreme (but individually valid) values can overflow inside the pipeline; such windows are refused
    # just below, so numpy need not warn about them.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        f = compute(sliding_windows(candles, ends[accepted], spread, imbalance, book_per_window=True),
                    use_book=use_book)
    finite = np.isfinite(f.x).all(axis=1)
    for k in np.flatnonzero(~finite).tolist():
        name = windows[kept[k]].names.window
        refused[kept[k]] = InvalidInput(f"{name}: the window's features overflow float32 (values span too "
                                        "wide a range); check the units of prices and volumes", name)
    if not finite.all():
        f = f.take(np.flatnonzero(finite))
    served = [i for i, ok in zip(kept, finite.tolist(), strict=True) if ok]
    rows: list[int | InvalidInput] = [refused.get(i, -1) for i in range(len(windows))]
    for row, i in enumerate(served):
        rows[i] = row
    return Prepared(f, rows, ts[ends[accepted]][finite])


def _refused_all(n: int, refused: dict[int, InvalidInput]) -> Prepared:
    return Prepared(_NO_FEATURES, [refused[i] for i in range(n)], np.zeros(0, dtype=np.int64))


_NO_FEATURES = Features(np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32), np.zeros((0, len(SIGNAL_NAMES))),
                        np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))


def book_signals(bids: list[tuple[float, float]], asks: list[tuple[float, float]],
                 prefix: str = "") -> tuple[float, float]:
    """Spread (bps) and top-of-book imbalance of a book given as [price, size] levels, after its rules:
    at least one level a side, prices finite > 0, sizes finite ≥ 0, all within float32's range, best bid
    below best ask. Plain Python: a book has a few levels, fewer than numpy's per-call cost repays."""
    for side, levels in (("bids", bids), ("asks", asks)):
        name = f"{prefix}book.{side}"
        if not levels:
            raise InvalidInput(f"{name} is empty; give at least 1 level, [price, size]", name)
        for r, level in enumerate(levels):
            for c, value in enumerate(level):
                problem = _level_problem(c, value)
                if problem:
                    field = f"{name}[{r}][{c}]"
                    raise InvalidInput(f"{field} {problem[0]} (got {value!r}); {problem[1]}", field)
    bid, ask = max(bids, key=lambda level: level[0]), min(asks, key=lambda level: level[0])
    if bid[0] >= ask[0]:
        name = f"{prefix}book.bids"
        raise InvalidInput(f"{name}: best bid {bid[0]} is not below best ask {ask[0]}; the book is crossed, "
                           "send a snapshot whose best bid is below its best ask", name)
    return top_signals(bid[0], bid[1], ask[0], ask[1])


def _level_problem(column: int, value: float) -> tuple[str, str] | None:
    if not math.isfinite(value):
        return "is not a finite number", "send a finite number (no NaN or Infinity)"
    if abs(value) > F32_MAX:
        return "is beyond float32's range", f"values must be less than or equal to {F32_MAX}"
    if column == 0 and value <= 0:
        return "is not greater than 0", "prices must be greater than 0"
    if column == 1 and value < 0:
        return "is negative", "sizes must be greater than or equal to 0"
    return None
