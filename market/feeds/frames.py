"""Bybit v5 public WebSocket frames → domain values, trusting nothing the exchange sends.

The shapes (shared/data/bybit/ws/, from bybit-exchange/docs @ 072c197d and recorded frames):
  pong     {"success": true, "ret_msg": "pong", "conn_id": ..., "req_id": ..., "op": "ping"}
           (spot answers "op": "pong")
  ack      {"success": true|false, "ret_msg": "" | "error:handler not found,topic:kline.5.X",
            "conn_id": ..., "req_id": ..., "op": "subscribe"}
  kline    {"topic": "kline.5.BTCUSDT", "type": "snapshot", "ts": ms, "data": [{"start": ms, "end": ms,
            "interval": "5", "open": "16649.5", "close": ..., "high": ..., "low": ..., "volume": ...,
            "turnover": ..., "confirm": false, "timestamp": ms}]}      numbers as strings
  book     {"topic": "orderbook.1.BTCUSDT", "type": "snapshot" | "delta", "ts": ms, "cts": ms,
            "data": {"s": "BTCUSDT", "b": [["price", "size"], ...], "a": [...], "u": int, "seq": int}}

`decode` returns one of `Pong`, `Ack`, `Klines`, `BookUpdate`, or `Dropped` with a reason from
market.feeds.events. A kline push may hold several candles: each is checked on its own, so one bad
candle is dropped without its neighbours. Candle invariants are `Candles.validate`'s, not a copy.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from market.candles import Candles
from market.errors import CandleError
from market.feeds.events import INVALID_CANDLE, MALFORMED, NON_NUMERIC, UNEXPECTED

_TOPIC_IN_MESSAGE = re.compile(r"topic:([\w.\-]+)")


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class Ack:
    success: bool
    topic: str | None  # the topic the answer is about, when the frame tells (req_id or ret_msg)
    message: str


@dataclass(frozen=True)
class Dropped:
    reason: str
    detail: str


@dataclass(frozen=True)
class Klines:
    topic: str
    closed: list[Candles]  # confirmed candles, one row each, validated, in the frame's order
    dropped: list[Dropped] = field(default_factory=list)  # candles refused inside this push


@dataclass(frozen=True)
class BookUpdate:
    topic: str
    kind: Literal["snapshot", "delta"]
    bids: list[tuple[float, float]]  # (price, size); size 0 deletes the level in a delta
    asks: list[tuple[float, float]]
    update_id: int  # `u`; 1 means the service restarted and this is a fresh book
    ts: int | None


Frame = Pong | Ack | Klines | BookUpdate | Dropped


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def decode(message: str | bytes) -> Frame:
    try:
        body = json.loads(message)
    except ValueError:
        return Dropped(MALFORMED, f"not JSON: {_clip(message)}")
    if not isinstance(body, dict):
        return Dropped(MALFORMED, f"not a JSON object: {_clip(message)}")
    try:
        if "topic" in body:
            topic = _text(body, "topic")
            if topic.startswith("kline."):
                return _klines(topic, body)
            if topic.startswith("orderbook."):
                return _book(topic, body)
            return Dropped(UNEXPECTED, f"topic {topic!r}")
        op = body.get("op")
        if op in ("ping", "pong"):
            return Pong()
        if op == "subscribe":
            return _ack(body)
        return Dropped(UNEXPECTED, f"op {op!r}: {_clip(message)}")
    except _Refused as refused:
        return Dropped(refused.reason, refused.detail)


def _ack(body: dict[str, Any]) -> Ack:
    success = body.get("success")
    if not isinstance(success, bool):
        raise _Refused(MALFORMED, f"subscribe answer without a boolean success: {_clip(json.dumps(body))}")
    message = str(body.get("ret_msg") or "")
    named = _TOPIC_IN_MESSAGE.search(message)
    req_id = body.get("req_id")
    topic = named[1] if named else (req_id if isinstance(req_id, str) and req_id else None)
    return Ack(success, topic, message)


def _klines(topic: str, body: dict[str, Any]) -> Klines:
    data = body.get("data")
    if not isinstance(data, list):
        raise _Refused(MALFORMED, f"{topic}: data is not a list of candles")
    closed, dropped = [], []
    for i, item in enumerate(data):
        try:
            candle = _candle(item, f"{topic} data[{i}]")
        except _Refused as refused:
            dropped.append(Dropped(refused.reason, refused.detail))
            continue
        if candle is not None:
            closed.append(candle)
    return Klines(topic, closed, dropped)


def _candle(item: object, where: str) -> Candles | None:
    """A confirmed candle as a validated one-row Candles; None for a candle still open."""
    if not isinstance(item, dict):
        raise _Refused(MALFORMED, f"{where} is not an object")
    confirm = item.get("confirm")
    if not isinstance(confirm, bool):
        raise _Refused(MALFORMED, f"{where}.confirm is {confirm!r}, not true or false")
    start = _integer(item, "start", where)
    values = [_number(item, name, where) for name in ("open", "high", "low", "close", "volume")]
    if not confirm:
        return None
    try:
        return Candles.from_arrays([start], *([v] for v in values)).validate()
    except CandleError as exc:
        raise _Refused(INVALID_CANDLE, f"{where}: {exc}") from None


def _book(topic: str, body: dict[str, Any]) -> BookUpdate:
    kind = body.get("type")
    data = body.get("data")
    if kind not in ("snapshot", "delta") or not isinstance(data, dict):
        raise _Refused(MALFORMED, f"{topic}: type {kind!r} or data is not a snapshot/delta object")
    sides = [_levels(data, side, topic) for side in ("b", "a")]
    ts = body.get("ts")
    return BookUpdate(topic, kind, sides[0], sides[1], _integer(data, "u", topic),
                      ts if isinstance(ts, int) and not isinstance(ts, bool) else None)


def _levels(data: dict[str, Any], side: str, where: str) -> list[tuple[float, float]]:
    levels = data.get(side, [])
    if not isinstance(levels, list):
        raise _Refused(MALFORMED, f"{where}.{side} is not a list of [price, size]")
    out = []
    for i, level in enumerate(levels):
        if not isinstance(level, list | tuple) or len(level) != 2:
            raise _Refused(MALFORMED, f"{where}.{side}[{i}] is not [price, size]")
        out.append((_as_number(level[0], f"{where}.{side}[{i}] price"),
                    _as_number(level[1], f"{where}.{side}[{i}] size")))
    return out


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _Refused(MALFORMED, f"{name} is {value!r}, not a string")
    return value


def _integer(item: dict[str, Any], name: str, where: str) -> int:
    value = item.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise _Refused(MALFORMED, f"{where}.{name} is {value!r}, not an integer")


def _number(item: dict[str, Any], name: str, where: str) -> float:
    if name not in item:
        raise _Refused(MALFORMED, f"{where} has no {name}")
    return _as_number(item[name], f"{where}.{name}")


def _as_number(value: object, where: str) -> float:
    """Bybit sends numbers as strings; accept those and plain numbers, nothing else, finite only."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Refused(NON_NUMERIC, f"{where} is {value!r}, not a number")
    try:
        number = float(value)
    except ValueError:
        raise _Refused(NON_NUMERIC, f"{where} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise _Refused(NON_NUMERIC, f"{where} is {value!r}, not a finite number")
    return number


def _clip(message: object, limit: int = 120) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return text if len(text) <= limit else text[:limit] + "..."
