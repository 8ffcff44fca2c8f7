"""Example bodies for the OpenAPI document and the README: one window of 48 one-minute candles of a gently
trending market with its book, in each of the three forms a window takes (`app/forms.py`). The three
give the same answer; the Bybit one also lists the candle still forming, first, as Bybit does.
"""

from __future__ import annotations

import math
from typing import Any

MINUTE_MS = 60_000


def _candles(n: int = 48) -> list[dict[str, Any]]:
    rows, close = [], 100.0
    for i in range(n):
        open_ = close
        close = round(open_ * math.exp(0.0004 + 0.0008 * math.sin(i / 3.0)), 4)
        high, low = round(max(open_, close) * 1.0006, 4), round(min(open_, close) * 0.9994, 4)
        rows.append({"ts": 1_704_067_200_000 + MINUTE_MS * i, "open": open_, "high": high, "low": low,
                     "close": close, "volume": round(100.0 + 20.0 * math.cos(i / 5.0), 2)})
    return rows


CANDLES: Any = _candles()
BOOK: Any = {"bids": [[round(CANDLES[-1]["close"] * 0.9999, 4), 3.0]],
             "asks": [[round(CANDLES[-1]["close"] * 1.0001, 4), 2.0]]}
COLUMNS: Any = {name: [c[name] for c in CANDLES] for name in CANDLES[0]}


def _kline(c: dict[str, Any]) -> list[str]:
    turnover = round(c["volume"] * (c["open"] + c["close"]) / 2, 4)
    return [str(c["ts"]), *(str(c[k]) for k in ("open", "high", "low", "close", "volume")), str(turnover)]


_FORMING = {"ts": CANDLES[-1]["ts"] + MINUTE_MS, "open": CANDLES[-1]["close"], "high": CANDLES[-1]["close"],
            "low": CANDLES[-1]["close"], "close": CANDLES[-1]["close"], "volume": 1.5}
BYBIT_KLINE: Any = [_kline(_FORMING), *(_kline(c) for c in reversed(CANDLES))]
BYBIT_TIME = _FORMING["ts"] + 20_000  # 20 s into the forming bar, as the response's `time` would say

OBJECTS_REQUEST: Any = {"symbol": "BTCUSDT", "candles": CANDLES, "book": BOOK}
COLUMNS_REQUEST: Any = {"symbol": "BTCUSDT", "candles": COLUMNS, "book": BOOK}
BYBIT_REQUEST: Any = {"symbol": "BTCUSDT", "bybit_kline": BYBIT_KLINE, "bybit_time": BYBIT_TIME, "book": BOOK}

PREDICT: Any = {
    "objects": {"summary": "candle objects, oldest first", "value": OBJECTS_REQUEST},
    "columns": {"summary": "columns of equal length, oldest first (the fastest form)",
                "value": COLUMNS_REQUEST},
    "bybit": {"summary": "Bybit's kline result.list, newest first, forming candle first (left out)",
              "value": BYBIT_REQUEST},
    "override": {"summary": "an override and a latency budget",
                 "value": {"candles": COLUMNS, "tier": "M0", "max_latency_ms": 5.0}},
}
BATCH: Any = {"mixed": {"summary": "one window in each form", "value": {
    "items": [OBJECTS_REQUEST, COLUMNS_REQUEST, BYBIT_REQUEST]}}}

# A real answer to each of the three forms above, captured from a server over `tiered train --quick --seed 0`
# (README, The service); another family gives other numbers. The Bybit form says dropped_open_candle: true.
ANSWER: Any = {'tier': 'M3',
               'requested_tier': 'M3',
               'reason': 'regime',
               'regime': {'name': 'calm',
                          'signals': {'volatility': 19.525528184578665,
                                      'spread_bps': 1.9916817995426053,
                                      'imbalance': 0.2,
                                      'trend': 0.7831860781713375,
                                      'vol_shift': 1.1699017084221695},
                          'estimated': []},
               'family_id': '<family id>',
               'last_bar_ts': 1704070020000,
               'dropped_open_candle': False,
               'out_of_range': {'inside': True, 'out': []},
               'prediction': 0.00027252748259343207,
               'target': {'name': 'return', 'horizon': 1, 'units': 'log return, log(close[t+h] / close[t])'},
               'latency_us': 1320.086}

# The routed model `tiered` of the Open Inference Protocol on the same window: WINDOW [1, 48, 5] and TS
# [1, 48], flat row-major (app/routed.py); its answer is /predict's for this window without the book.
ROUTED_INFER: Any = {"inputs": [
    {"name": "WINDOW", "shape": [1, len(CANDLES), 5], "datatype": "FP32",
     "data": [c[k] for c in CANDLES for k in ("open", "high", "low", "close", "volume")]},
    {"name": "TS", "shape": [1, len(CANDLES)], "datatype": "INT64", "data": [c["ts"] for c in CANDLES]}]}
