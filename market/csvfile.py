"""Candle CSV files as exchanges export them, read into `Candles` with their gaps reported.

`read_candles(path)` accepts:
- a header naming the columns in any of the spellings in `COLUMN_NAMES` (Binance klines with
  open_time / date / timestamp ..., optional taker-buy volume; Bybit exports with startTime and
  turnover; the generic `timestamp,open,high,low,close,volume`; extra columns are ignored), or no
  header: Binance's 12-column kline rows, or six columns timestamp, open, high, low, close, volume;
- timestamps as ISO 8601 strings (with or without an offset or Z, fractional seconds allowed; naive
  ones are UTC) or epoch seconds, ms, µs or ns, told apart by magnitude value by value (Binance moved
  its spot files from ms to µs in 2025, so one file can hold both);
- rows newest first or oldest first (returned oldest first); `,`, `;` or tab as the delimiter.

A bad file raises `CandleFileError` naming the file, the 1-based line and the problem. Missing bars
are not bridged: they come back in `LoadedCandles.gaps`, measured against the interval inferred
from the median step.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from market.candles import Candles
from market.errors import CandleFileError

# Header spellings, compared lowercased with everything but letters and digits removed; the first
# spelling present wins, so open_time beats a later close_time-like `time` column.
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "ts": ("opentime", "starttime", "timestamp", "unix", "datetime", "date", "time", "ts"),
    "open": ("open", "openprice", "o"),
    "high": ("high", "highprice", "h"),
    "low": ("low", "lowprice", "l"),
    "close": ("close", "closeprice", "c"),
    "volume": ("volume", "vol", "basevolume", "v"),
    "taker_buy_volume": ("takerbuybaseassetvolume", "takerbuyvolume", "takerbasevolume",
                         "takerbuybasevolume"),
}
OPTIONAL = frozenset({"taker_buy_volume"})
# Binance kline rows without a header: open time, O, H, L, C, volume, close time, quote volume,
# trades, taker-buy base volume, taker-buy quote volume, ignore.
BINANCE_ROW = {"ts": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "taker_buy_volume": 9}
GENERIC_ROW = {"ts": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Gap:
    """A hole in the series: `missing` bars expected between two consecutive rows."""

    after_ts: int  # epoch ms of the last bar before the hole
    before_ts: int  # epoch ms of the first bar after it
    missing: int


@dataclass(frozen=True)
class LoadedCandles:
    candles: Candles  # oldest first, ts epoch ms
    symbol: str  # guessed from the file name, "" when it names none
    interval: str  # "5m", "1h", "1d", ... from the median step; "" for a single row
    gaps: list[Gap]
    path: str


def read_candles(path: str | Path) -> LoadedCandles:
    name = str(path)
    rows, lines = _read_rows(name)
    if not rows:
        raise CandleFileError(name, None, "is empty; expected a header and one candle per line")
    columns, header_rows = _layout(name, rows[0], lines[0])
    body, line_no = rows[header_rows:], np.asarray(lines[header_rows:], dtype=np.int64)
    if not body:
        raise CandleFileError(name, lines[0], "has a header but no candle rows")
    width = max(columns.values()) + 1
    for row, line in zip(body, line_no, strict=True):
        if len(row) < width:
            raise CandleFileError(name, int(line), f"has {len(row)} fields; the columns need {width} "
                                  f"(a missing column or a truncated row)")
    ts = _parse_timestamps(name, [row[columns["ts"]] for row in body], line_no)
    values = {key: _parse_numbers(name, key, [row[i] for row in body], line_no)
              for key, i in columns.items() if key != "ts"}
    if ts[0] > ts[-1]:  # newest first
        ts, line_no = ts[::-1], line_no[::-1]
        values = {key: v[::-1] for key, v in values.items()}
    _check(name, ts, values, line_no)
    candles = Candles.from_arrays(ts, values["open"], values["high"], values["low"], values["close"],
                                  values["volume"], values.get("taker_buy_volume"))
    step = int(np.rint(np.median(np.diff(candles.ts)))) if len(candles) > 1 else 0
    return LoadedCandles(candles, guess_symbol(name), interval_name(step), find_gaps(candles.ts, step), name)


def _read_rows(path: str) -> tuple[list[list[str]], list[int]]:
    """Non-blank rows and the file line each starts on."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            f.seek(0)
            delimiter = max(",;\t", key=first.count)
            reader = csv.reader(f, delimiter=delimiter)
            rows, lines, line = [], [], 1
            for row in reader:
                if row and (len(row) > 1 or row[0].strip()):
                    rows.append(row)
                    lines.append(line)
                line = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CandleFileError(path, None, f"cannot be read as a CSV text file ({exc})") from exc
    return rows, lines


def _layout(path: str, first: list[str], line: int) -> tuple[dict[str, int], int]:
    """Column index per field, and how many header rows precede the candles (0 or 1)."""
    if any(_is_number(field) for field in first):  # no header: positional layouts
        if len(first) >= 12:
            return BINANCE_ROW, 0
        if len(first) >= 6:
            return GENERIC_ROW, 0
        raise CandleFileError(path, line, f"has no header and {len(first)} fields; give a header or "
                              "at least timestamp, open, high, low, close, volume")
    names = [re.sub(r"[^a-z0-9]", "", field.lower()) for field in first]
    columns: dict[str, int] = {}
    for key, spellings in COLUMN_NAMES.items():
        found = next((names.index(s) for s in spellings if s in names), None)
        if found is not None:
            columns[key] = found
        elif key not in OPTIONAL:
            raise CandleFileError(path, line, f"missing column {key!r}: the header has none of "
                                  f"{', '.join(spellings)} (case, spaces and underscores ignored)")
    return columns, 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_numbers(path: str, key: str, texts: list[str], lines: np.ndarray) -> np.ndarray:
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        i = next(i for i, text in enumerate(texts) if not _is_number(text))
        raise CandleFileError(path, int(lines[i]), f"{key} {texts[i]!r} is not a number") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = bad[0]
        raise CandleFileError(path, int(lines[i]), f"{key} {texts[i]!r} is not a finite number")
    return values


def _parse_timestamps(path: str, texts: list[str], lines: np.ndarray) -> np.ndarray:
    """Epoch ms (int64) from epoch numbers in any unit or from ISO 8601 strings."""
    if not _is_number(texts[0]):
        fast = _iso_to_ms(texts)
        if fast is not None:
            return fast
        out = np.empty(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            try:
                out[i] = parse_timestamp(text)
            except ValueError:
                raise _bad_timestamp(path, int(lines[i]), text) from None
        return out
    try:
        return epoch_to_ms(np.array(texts, dtype=np.int64))
    except ValueError:  # fractional epoch seconds, or a stray non-number
        values = np.array([float(text) if _is_number(text) else np.nan for text in texts])
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise _bad_timestamp(path, int(lines[bad[0]]), texts[bad[0]])
    return epoch_to_ms(values)


def _bad_timestamp(path: str, line: int | None, text: str) -> CandleFileError:
    return CandleFileError(path, line, f"timestamp {text!r} is neither an ISO 8601 date-time nor "
                           "epoch seconds, ms or µs")


def _iso_to_ms(texts: list[str]) -> np.ndarray | None:
    """numpy's vectorised parse for the common case (UTC, one suffix for all); None sends the file
    down the exact per-value path, which also finds the bad line."""
    suffix = next(s for s in ("+00:00", "Z", "") if all(t.endswith(s) for t in texts))
    if suffix:
        texts = [t[: -len(suffix)] for t in texts]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns, not fails, on offsets it cannot represent
        try:
            out = np.array(texts, dtype="datetime64[ms]")
        except (ValueError, Warning):
            return None
    return None if np.isnat(out).any() else out.astype(np.int64)


def epoch_to_ms(values: np.ndarray) -> np.ndarray:
    """Epoch seconds / ms / µs / ns → ms, by magnitude (1e11 s is year 5138; 1e11 ms is 1973)."""
    v = values.astype(np.float64) if values.dtype.kind == "f" else values.astype(np.int64)
    size = np.abs(v)
    out = v.copy()
    seconds, micros, nanos = size < 1e11, (size >= 1e14) & (size < 1e17), size >= 1e17
    out[seconds] = v[seconds] * 1000
    out[micros] = v[micros] // 1000
    out[nanos] = v[nanos] // 1_000_000
    return np.floor(out).astype(np.int64) if out.dtype.kind == "f" else out


def parse_timestamp(text: str) -> int:
    """One timestamp (ISO 8601, naive = UTC, or epoch in any unit) → epoch ms; ValueError if neither."""
    text = text.strip()
    if _is_number(text):
        try:
            number: np.ndarray = np.array([int(text)])
        except ValueError:
            number = np.array([float(text)])
        return int(epoch_to_ms(number)[0])
    if text.upper().endswith("UTC"):
        text = text[:-3].rstrip()
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // ONE_MS


def _check(path: str, ts: np.ndarray, v: dict[str, np.ndarray], lines: np.ndarray) -> None:
    def refuse(mask: np.ndarray, problem: str) -> None:
        bad = np.flatnonzero(mask)
        if bad.size:
            i = int(bad[0])
            raise CandleFileError(path, int(lines[i]), problem.format(i=i, **{k: a[i] for k, a in v.items()}))

    for key in ("open", "high", "low", "close"):
        refuse(v[key] <= 0, f"{key} {{{key}}} is not a positive price")
    top, bottom = np.maximum(v["open"], v["close"]), np.minimum(v["open"], v["close"])
    refuse(v["high"] < top, "high {high} is below max(open {open}, close {close})")
    refuse(v["low"] > bottom, "low {low} is above min(open {open}, close {close})")
    refuse(v["volume"] < 0, "volume {volume} is negative")
    if "taker_buy_volume" in v:
        refuse(v["taker_buy_volume"] < 0, "taker-buy volume {taker_buy_volume} is negative")
    step = np.diff(ts)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0])
        how = "repeats the timestamp of" if step[i] == 0 else "is earlier than"
        raise CandleFileError(path, int(lines[i + 1]), f"timestamp {_iso(ts[i + 1])} {how} line "
                              f"{lines[i]} ({_iso(ts[i])}); rows must be strictly ordered by time")


def _iso(ms: int) -> str:
    return (EPOCH + int(ms) * ONE_MS).isoformat().replace("+00:00", "Z")


def find_gaps(ts: np.ndarray, step: int) -> list[Gap]:
    """Holes of at least one whole bar; steps off the grid by under half a bar are not gaps."""
    if step <= 0:
        return []
    diffs = np.diff(ts)
    missing = np.rint(diffs / step).astype(np.int64) - 1
    return [Gap(int(ts[i]), int(ts[i + 1]), int(missing[i])) for i in np.flatnonzero(missing >= 1)]


def interval_name(step_ms: int) -> str:
    if step_ms <= 0:
        return ""
    day = 86_400_000
    if 28 * day <= step_ms <= 31 * day:
        return "1M"
    for suffix, unit in (("w", 7 * day), ("d", day), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if step_ms % unit == 0:
            return f"{step_ms // unit}{suffix}"
    return f"{step_ms}ms"


def guess_symbol(path: str) -> str:
    """`binance_ETHUSDT_5m.csv` → ETHUSDT; `BTC-USDT_1h.csv` → BTCUSDT; "" when no part is a pair."""
    for part in re.split(r"[_. ]", Path(path).stem.upper()):
        pieces = part.split("-")  # BTC-USDT is one pair; btcusdt-quotes holds one
        for token in ("".join(pieces[:2]), *pieces):
            for quote in QUOTES:
                base = token[: -len(quote)]
                if token.endswith(quote) and 2 <= len(base) <= 10 and base.isalnum() and not base.isdigit():
                    return token
    return ""
