"""The JSON of /predict, /predict/batch and /regime: msgspec types, decoding bytes into domain queries,
encoding domain results, and the same types as OpenAPI components.

msgspec decodes a body in one pass into these types (no per-candle pydantic model, no intermediate
dicts) and checks structure and types there: unknown and missing fields, numbers that are strings,
arrays over the configured caps (TIERED_MAX_CANDLES, TIERED_MAX_BATCH_ITEMS: the types are built from
the settings, so the OpenAPI document states the caps that are enforced). Values are checked by the
window rules (`app/windows.py`), the same for all three forms of a window (`app/forms.py`).

Two things strict JSON cannot express reach the rules anyway: NaN and Infinity, which are not JSON
numbers, make msgspec refuse the body at a byte offset; such a body is read again by Python's json
module, which knows these tokens, so the message names the element like any other non-finite value.
Duplicate keys keep the last value (msgspec, like orjson, reports no duplicates; finding them needs a
parser that hands over every key, and Python's json with a hook costs 9× msgspec on a window, measured
in the commit that chose this): a key sent twice is never an error, the later value is used.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct
from starlette.responses import Response

from app import forms
from app.dataplane import Answer, ClassPrediction, Decision, Query, TargetInfo
from app.errors import InvalidInput
from app.forms import MAX_LATENCY_MS
from app.router import Reason
from market.bybit import INTERVALS
from market.features import WINDOW

MAX_BOOK_LEVELS = 1000

Ts = Annotated[float, Meta(description="bar open time, epoch milliseconds",
                           extra_json_schema={"type": "integer", "minimum": 0, "exclusiveMaximum": 2**53})]
Level = tuple[float, float]


class Candle(Struct, forbid_unknown_fields=True, gc=False):
    ts: Ts
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy_volume: float | None = None  # on every candle or on none


class OrderBook(Struct, forbid_unknown_fields=True):
    """The order book at the last close; only the best level of each side is read."""

    bids: Annotated[list[Level], Meta(max_length=MAX_BOOK_LEVELS, description="[price, size]; best highest",
                                      extra_json_schema={"minItems": 1})]
    asks: Annotated[list[Level], Meta(max_length=MAX_BOOK_LEVELS, description="[price, size]; best lowest",
                                      extra_json_schema={"minItems": 1})]


class Signals(Struct):
    volatility: Annotated[float, Meta(description="mean (high − low) / close of the last bars, bps")]
    spread_bps: float
    imbalance: Annotated[float, Meta(description="top-of-book size imbalance in [-1, 1]")]
    trend: Annotated[float, Meta(description="efficiency ratio over the window, in [0, 1]")]
    vol_shift: Annotated[float, Meta(description="recent volatility over the window's")]


class RegimeInfo(Struct):
    name: str
    signals: Signals
    estimated: Annotated[list[str], Meta(description=(
        "inputs estimated from the candles: spread_bps and imbalance when no book was given; order_flow "
        "when the window has no taker-buy volume but the family was trained with it (the close location "
        "stands in for the taker-buy share)"))]


class TrainingRange(Struct):
    inside: Annotated[bool, Meta(description="every feature of the window lies within the family's training "
                                             "range (TIERED_RANGE_MARGIN widths beyond it still count)")]
    out: Annotated[list[str], Meta(description="the features outside it, by name (their ranges: GET /tiers, "
                                               "feature_ranges)")]


class RegimeResponse(Struct):
    tier: Annotated[str, Meta(description="the tier that answered")]
    requested_tier: Annotated[str, Meta(description="the tier the override or the regime asked for")]
    reason: Reason
    regime: RegimeInfo
    family_id: str
    last_bar_ts: Annotated[int, Meta(description="open time of the window's last closed bar, epoch ms")]
    dropped_open_candle: Annotated[bool, Meta(description="bybit_kline: its newest row had not closed and "
                                                          "was left out")]
    out_of_range: Annotated[TrainingRange | None, Meta(
        description="the window against the training split's range of each feature; null for a family "
                    "trained before ranges were recorded. TIERED_OUT_OF_RANGE=refuse refuses such windows")]


class PredictResponse(RegimeResponse):
    prediction: Annotated[float | ClassPrediction, Meta(
        description="in `target.units`: one value, or for a target with classes the likeliest class and "
                    "every class's probability")]
    target: Annotated[TargetInfo, Meta(description="what the family predicts: name, horizon in bars, units")]
    latency_us: Annotated[float, Meta(description="server time from decoded request to prediction")]


class BatchResponse(Struct):
    results: list[PredictResponse]
    family_id: str
    latency_us: float


@dataclass(frozen=True)
class Limits:
    max_candles: int
    max_batch_items: int


@dataclass(frozen=True)
class Types:
    """The request types for one service's limits, and their decoders."""

    request: type[Struct]
    batch: type[Struct]
    decode_request: msgspec.json.Decoder[Any]
    decode_batch: msgspec.json.Decoder[Any]


def types(limits: Limits) -> Types:
    cap = limits.max_candles

    def column(what: str) -> Any:
        return Annotated[list[float], Meta(max_length=cap, description=what)]

    columns = msgspec.defstruct("CandleColumns", [
        ("ts", Annotated[list[Ts], Meta(max_length=cap, description="bar open times, epoch ms")]),
        *((name, column(name)) for name in ("open", "high", "low", "close", "volume")),
        ("taker_buy_volume", column("taker_buy_volume") | None, None),
    ], forbid_unknown_fields=True, module=__name__)
    windows = f"at least the window ({WINDOW}), at most TIERED_MAX_CANDLES ({cap})"
    kline = Annotated[list[str | float], Meta(min_length=7, max_length=7, description=(
        "[startTime, open, high, low, close, volume, turnover], numbers as strings"))]
    request = msgspec.defstruct("PredictRequest", [
        ("symbol", Annotated[str, Meta(max_length=64)] | None, None),
        ("candles", Annotated[list[Candle], Meta(max_length=cap, extra_json_schema={"minItems": WINDOW})]
         | columns | None, None),
        ("bybit_kline", Annotated[list[kline], Meta(max_length=cap, description=(
            f"Bybit's GET /v5/market/kline result.list as it comes: newest first, {windows} rows; a first "
            "row that had not closed at bybit_time (default: now) is left out"))] | None, None),
        ("bybit_interval", Literal[INTERVALS] | None, None),
        ("bybit_time", Annotated[int, Meta(ge=0, description="epoch ms the list was fetched at: the "
                                                             "response's `time`")] | None, None),
        ("book", OrderBook | None, None),
        ("tier", Annotated[str, Meta(min_length=1, max_length=32,
                                     description="ask for this tier instead of the regime's choice")] | None,
         None),
        ("max_latency_ms", Annotated[float, Meta(
            description="latency budget: the largest tier that fits answers",
            extra_json_schema={"exclusiveMinimum": 0, "maximum": MAX_LATENCY_MS})] | None, None),
    ], forbid_unknown_fields=True, module=__name__)
    batch = msgspec.defstruct("BatchRequest", [
        ("items", Annotated[list[request], Meta(  # type: ignore[valid-type]
            min_length=1, max_length=limits.max_batch_items,
            description=f"windows to predict, at most TIERED_MAX_BATCH_ITEMS ({limits.max_batch_items})")]),
    ], forbid_unknown_fields=True, module=__name__)
    return Types(request, batch, msgspec.json.Decoder(request), msgspec.json.Decoder(batch))


T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()
_SETTING = {"candles": "TIERED_MAX_CANDLES", "bybit_kline": "TIERED_MAX_CANDLES",
            "items": "TIERED_MAX_BATCH_ITEMS"}


def encode(value: Struct) -> bytes:
    return _ENCODER.encode(value)


def decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """The body as the decoder's type; InvalidInput naming the field otherwise."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as e:
        raise _invalid(e) from None
    except msgspec.DecodeError:
        pass
    try:  # not JSON for msgspec: perhaps NaN or Infinity tokens, which the rules should name
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InvalidInput(f"body is not UTF-8 text ({e.reason} at byte {e.start}); send a valid JSON "
                           "document", "body") from None
    except json.JSONDecodeError as e:
        raise InvalidInput(f"body is not valid JSON at character {e.pos} ({e.msg}); send a valid JSON "
                           "document", "body") from None
    except RecursionError:
        raise InvalidInput("body nests arrays or objects too deeply; send a valid JSON document",
                           "body") from None
    try:
        return msgspec.convert(data, decoder.type, strict=True)
    except msgspec.ValidationError as e:
        raise _invalid(e) from None


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_KEY = re.compile(r"^Object (?P<kind>contains unknown|missing required) field `(?P<name>[^`]+)`$")
_LONGEST = re.compile(r"^Expected `array` of length <= (?P<n>\d+)$")
_TYPE_WORDS = {"float": "a number", "int": "an integer", "str": "a string", "array": "an array",
               "object": "an object", "null": "null", "bool": "a boolean"}


def _invalid(error: msgspec.ValidationError) -> InvalidInput:
    """msgspec's message (`Expected `float`, got `str` - at `$.candles[5].open``) in this service's words."""
    match = _AT.match(str(error))
    what, path = (match["what"], (match["path"] or "").lstrip(".")) if match else (str(error), "")
    key = _KEY.match(what)
    if key:
        field = f"{path}.{key['name']}" if path else key["name"]
        fix = "remove it (unknown field)" if key["kind"].startswith("contains") else "it is required; add it"
        return InvalidInput(f"{field}: {fix}", field)
    field = path or "body"
    longest = _LONGEST.match(what)
    if longest:
        segments = re.sub(r"\[\d+\]", "", path).split(".")
        setting = next((_SETTING[s] for s in reversed(segments) if s in _SETTING), None)
        where = f" ({setting})" if setting else ""
        return InvalidInput(f"{field}: holds more than {longest['n']} values; send at most {longest['n']}"
                            f"{where}", field)
    if what == "Number out of range":
        return InvalidInput(f"{field} is not a finite number (beyond float64's range); send a finite number",
                            field)
    words = re.sub(r"`([^`]+)`", lambda m: " or ".join(_TYPE_WORDS.get(t.strip(), t.strip())
                                                         for t in m[1].split("|")), what)
    return InvalidInput(f"{field}: {words[:1].lower()}{words[1:]}", field)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Codec:
    """Bodies to domain queries and domain results to bodies, for one service's limits."""

    def __init__(self, limits: Limits, now_ms: Callable[[], int] = _now_ms) -> None:
        self.limits, self.types, self.now_ms = limits, types(limits), now_ms

    def query(self, body: bytes, content_type: str | None) -> Query:
        _check_json(content_type)
        return forms.query(decode(self.types.decode_request, body), self.now_ms)

    def queries(self, body: bytes, content_type: str | None) -> list[Query]:
        _check_json(content_type)
        items = decode(self.types.decode_batch, body).items
        return [forms.query(item, self.now_ms, f"items[{i}].") for i, item in enumerate(items)]


def _check_json(content_type: str | None) -> None:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise InvalidInput(f"body: sent as {media or 'no content type'}; send JSON with Content-Type: "
                           "application/json", "body")


def regime_response(d: Decision) -> RegimeResponse:
    return RegimeResponse(d.tier, d.requested, d.reason, _regime(d), d.family_id, d.last_bar_ts,
                          d.dropped_open_candle, _range(d))


def predict_response(a: Answer) -> PredictResponse:
    d = a.decision
    return PredictResponse(d.tier, d.requested, d.reason, _regime(d), d.family_id, d.last_bar_ts,
                           d.dropped_open_candle, _range(d), a.prediction, a.target, a.latency_us)


def batch_response(answers: list[Answer], family_id: str, latency_us: float) -> BatchResponse:
    return BatchResponse([predict_response(a) for a in answers], family_id, latency_us)


def _range(d: Decision) -> TrainingRange | None:
    return None if d.out_of_range is None else TrainingRange(not d.out_of_range, d.out_of_range)


def _regime(d: Decision) -> RegimeInfo:
    return RegimeInfo(d.regime, Signals(**d.signals), d.estimated)


def json_response(value: Struct) -> Response:
    return Response(encode(value), media_type="application/json")


# OpenAPI: the msgspec types become components; routes refer to them (`request_body`, `response`).

def components(codec: Codec) -> dict[str, Any]:
    t = codec.types
    _, found = msgspec.json.schema_components(
        [t.request, t.batch, PredictResponse, RegimeResponse, BatchResponse],
        ref_template="#/components/schemas/{name}")
    return found


def request_body(name: str, examples: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}, "examples": examples}}}}


def response(name: str, example: Any = None) -> dict[int | str, dict[str, Any]]:
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{name}"}}
    if example is not None:
        content["example"] = example
    return {200: {"description": "Successful Response", "content": {"application/json": content}}}
