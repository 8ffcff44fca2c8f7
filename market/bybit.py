"""Bybit's public v5 market REST API: klines over a time range and order-book snapshots.

    with BybitClient() as bybit:
        candles = bybit.klines("BTCUSDT", "5", start_ms, end_ms)   # closed bars, oldest first
        book = bybit.orderbook("BTCUSDT")
        candles = await bybit.klines_async(...)   # from async code (the live feed's backfill)

What the API does that this module absorbs (see shared/data/bybit/BYBIT_V5_NOTES.md):
- `/v5/market/kline` returns at most 1000 bars per call, newest first, every number a string, and
  its first bar may still be open. We page backwards (next `end` = oldest startTime - 1), dedupe,
  drop bars that had not closed at the response's server `time`, and return oldest first.
- `retCode` and `time` arrive as integers from the API and as strings in some captures; both work.
- Errors come as HTTP 200 with `retCode` ≠ 0. 10006, 10016 and 10429 (rate limit, server busy,
  frequency protection), HTTP 429 and 5xx are retried with exponential backoff; the
  `X-Bapi-Limit-Reset-Timestamp` header sets the wait when present, but it is often missing.
  HTTP 403 is the IP ban ("access too frequent", lifted after about 10 minutes): one long pause,
  then one more try. Anything else raises `ExchangeError` at once.

From async code, `klines_async` runs the same paging and retries in a worker thread, so the event
loop never waits on the exchange; a caller that must be able to stop it passes a `sleep` that
returns early or raises (the live feed does).

`ExchangeError.code` is Bybit's retCode, the HTTP status when HTTP itself failed, or -1 when no
usable answer arrived (network failure, a body that is not the documented shape).
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import time
from calendar import monthrange
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np

from market.candles import Book, Candles
from market.csvfile import parse_timestamp
from market.errors import ExchangeError, MarketError

INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
RETRYABLE_CODES = frozenset({10006, 10016, 10429})
PAGE_LIMIT = 1000
MINUTE_MS = 60_000


class BybitClient:
    def __init__(
        self,
        base_url: str = "https://api.bybit.com",
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 5,
        timeout: float = 10.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        ban_pause: float = 600.0,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, transport=transport, timeout=timeout,
                                  headers={"User-Agent": "tiered-market/0.1"})
        self._sleep = sleep
        self.max_retries, self.backoff, self.max_backoff, self.ban_pause = (
            max_retries, backoff, max_backoff, ban_pause)

    def __enter__(self) -> BybitClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int,
               category: str = "linear") -> Candles:
        """Closed bars whose start lies in [start_ms, end_ms], oldest first, validated."""
        interval = bybit_interval(interval)
        if start_ms > end_ms:
            raise ValueError(f"start {start_ms} is after end {end_ms}; give start <= end (epoch ms)")
        bars: dict[int, list[float]] = {}
        end = end_ms
        while end >= start_ms:
            body = self._get("/v5/market/kline", {"category": category, "symbol": symbol,
                                                  "interval": interval, "start": start_ms, "end": end,
                                                  "limit": PAGE_LIMIT})
            page = _kline_rows(body)
            if not page:
                break
            server_ms = _as_int(body.get("time"), "time")
            for ts, row in page:
                if start_ms <= ts <= end_ms and bar_end(ts, interval) <= server_ms:
                    bars[ts] = row
            oldest = min(ts for ts, _ in page)
            if oldest <= start_ms or oldest > end:  # reached the start, or the server ignored `end`
                break
            end = oldest - 1
        order = sorted(bars)
        values = np.array([bars[ts] for ts in order], dtype=np.float64).reshape(-1, 5)
        return Candles.from_arrays(order, *values.T).validate()

    async def klines_async(self, symbol: str, interval: str, start_ms: int, end_ms: int,
                           category: str = "linear") -> Candles:
        """`klines` for async code: the requests and the waits between retries run in a worker thread."""
        return await asyncio.to_thread(self.klines, symbol, interval, start_ms, end_ms, category)

    def orderbook(self, symbol: str, category: str = "linear", limit: int = 25) -> Book:
        body = self._get("/v5/market/orderbook", {"category": category, "symbol": symbol, "limit": limit})
        result = body.get("result") or {}
        try:
            return Book.from_levels(result["b"], result["a"], _as_int(result.get("ts"), "ts")).validate()
        except (KeyError, TypeError, ValueError) as exc:
            raise ExchangeError(-1, f"order book body has no usable b/a levels ({exc!r})",
                                endpoint="/v5/market/orderbook") from exc

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """One successful (retCode 0) body, retrying what the API says is worth retrying."""
        attempt, ban_paused = 0, False
        while True:
            wait: float | None = None
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                failure = ExchangeError(-1, f"network error: {exc!r}", endpoint=path)
            else:
                status = response.status_code
                if status == 403:
                    if ban_paused:
                        raise ExchangeError(403, "HTTP 403 again after a long pause: the IP is banned "
                                            "(too many requests) or the region is blocked", endpoint=path)
                    ban_paused = True
                    self._sleep(self.ban_pause)
                    continue
                if status == 429 or status >= 500:
                    failure = ExchangeError(status, f"HTTP {status}", endpoint=path)
                elif status != 200:
                    raise ExchangeError(status, f"HTTP {status}: {response.text[:200]}", endpoint=path)
                else:
                    body = _json(response, path)
                    code = _as_int(body.get("retCode"), "retCode")
                    if code == 0:
                        return body
                    failure = ExchangeError(code, str(body.get("retMsg", "")), endpoint=path)
                    if code not in RETRYABLE_CODES:
                        raise failure
                    wait = self._reset_wait(response, body)
            if attempt >= self.max_retries:
                raise ExchangeError(failure.code, f"{failure.message} (gave up after {attempt + 1} tries)",
                                    endpoint=path)
            self._sleep(wait if wait is not None else min(self.backoff * 2**attempt, self.max_backoff))
            attempt += 1

    def _reset_wait(self, response: httpx.Response, body: dict[str, Any]) -> float | None:
        """Seconds until the rate-limit window resets, from the header and the server's clock."""
        try:
            reset_ms = int(response.headers["X-Bapi-Limit-Reset-Timestamp"])
            server_ms = _as_int(body.get("time"), "time")
        except (KeyError, ValueError, ExchangeError):
            return None
        return min(max(reset_ms - server_ms, 0) / 1000, self.max_backoff)


def _json(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ExchangeError(-1, f"body is not JSON: {response.text[:200]!r}", endpoint=path) from exc
    if not isinstance(body, dict) or "retCode" not in body:
        raise ExchangeError(-1, f"body has no retCode: {str(body)[:200]}", endpoint=path)
    return body


def _as_int(value: object, name: str) -> int:
    """Integers the API sends as int and captures (and some endpoints) as strings."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ExchangeError(-1, f"{name} {value!r} is not an integer", endpoint="") from None


def _kline_rows(body: dict[str, Any]) -> list[tuple[int, list[float]]]:
    """`result.list` rows [startTime, open, high, low, close, volume, turnover] → (ts, OHLCV)."""
    try:
        return [(int(r[0]), [float(x) for x in r[1:6]]) for r in (body.get("result") or {}).get("list", [])]
    except (TypeError, ValueError, IndexError) as exc:
        raise ExchangeError(-1, f"kline row is not [startTime, open, high, low, close, volume, ...] "
                            f"({exc!r})", endpoint="/v5/market/kline") from exc


def bybit_interval(text: str) -> str:
    """Bybit's interval for `text`: its own spellings (5, 60, D) or 5m, 1h, 4h, 1d, 1w, 1M."""
    if text in INTERVALS:
        return text
    match = re.fullmatch(r"(\d+)([mhdwM])", text)
    if match:
        n, unit = int(match[1]), match[2]
        name = {"m": str(n), "h": str(n * 60)}.get(unit) or (unit.upper() if n == 1 else "")
        if name in INTERVALS:
            return name
    raise ValueError(f"interval {text!r} is not one Bybit serves; use one of {', '.join(INTERVALS)} "
                     "(or 1m, 5m, 1h, 4h, 1d, 1w, 1M)")


def bar_end(start_ms: int, interval: str) -> int:
    """When the bar starting at start_ms closes; months are calendar months (UTC)."""
    if interval == "M":
        day = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
        return start_ms + monthrange(day.year, day.month)[1] * 1440 * MINUTE_MS
    minutes = {"D": 1440, "W": 7 * 1440}.get(interval) or int(interval)
    return start_ms + minutes * MINUTE_MS


def newest_is_open(starts: np.ndarray, now_ms: int, interval: str | None = None) -> bool:
    """Whether the first row of a kline `result.list` (newest first) had not closed at `now_ms`.

    The list alone cannot tell: an open candle looks like a closed one whose close is the last trade.
    What tells is the clock: the row's start plus one interval (`interval` in Bybit's spelling, else
    the list's own spacing, its smallest step between neighbours) is later than `now_ms`. Only the
    first row is ever judged: a clock a little behind Bybit's cannot mark older bars open.
    """
    first = float(starts[0]) if starts.size else float("nan")
    if not 0 <= first <= 2**53:  # no usable start time: nothing to judge (the caller refuses the list)
        return False
    if interval is not None:
        return bar_end(int(first), bybit_interval(interval)) > now_ms
    if not np.isfinite(starts).all():
        return False
    steps = starts[:-1] - starts[1:]  # newest first: steps are positive
    steps = steps[steps > 0]
    return bool(steps.size) and first + float(steps.min()) > now_ms


def default_client() -> BybitClient:
    """The client `fetch_to_csv` uses when given none (tests swap this for a replaying one)."""
    return BybitClient()


def fetch_to_csv(symbol: str, interval: str, start: str | int, end: str | int, out: str | Path,
                 category: str = "linear", client: BybitClient | None = None) -> int:
    """Write closed bars starting in [start, end) to `out` as `timestamp,open,high,low,close,volume`
    (epoch ms), the file `market.csvfile.read_candles` reads back; return the number of bars.

    start and end are epoch ms or ISO dates/times (naive = UTC); end is exclusive, so
    2024-12-01 .. 2024-12-02 at 5 minutes is 288 bars.
    """
    start_ms, end_ms = parse_timestamp(str(start)), parse_timestamp(str(end))
    bybit = client or default_client()
    try:
        candles = bybit.klines(symbol, interval, start_ms, end_ms - 1, category=category)
    finally:
        if client is None:  # a client passed in stays open for its owner
            bybit.close()
    if not len(candles):
        raise MarketError(f"Bybit has no closed {category} {symbol} {interval} bars between {start} "
                          f"and {end}; check the symbol, the category and the dates")
    target = Path(out)
    partial = target.with_name(target.name + ".part")
    try:  # written aside and renamed, so a failure never leaves a half file under the real name
        with open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
            writer.writerows(zip(candles.ts.tolist(), candles.open.tolist(), candles.high.tolist(),
                                 candles.low.tolist(), candles.close.tolist(), candles.volume.tolist(),
                                 strict=True))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return len(candles)
