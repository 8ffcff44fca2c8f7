"""Request bodies for the serving benchmark: market windows cut from the synthetic market with its book,
in each form `POST /predict` takes (`app/forms.py`: candle objects, columns, Bybit's kline list), drawn
evenly from the four true regimes so a rotation through them exercises every tier the router picks;
and a tier's feature rows as the Open Inference Protocol carries them (`oip_json`, `oip_binary`,
`grpc_infer`: JSON, a JSON header then raw bytes, a serialized gRPC ModelInferRequest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from app import oip, proto
from market import features
from market.candles import Book, Candles
from market.regime import REGIMES
from market.synthetic import SyntheticMarket, simulate

BARS = 50_000  # enough for every regime, crisis included, to recur many times
SEED = 11  # not the training market's seed (7): the windows are new to the family
Form = Literal["objects", "columns", "bybit"]
FORMS: tuple[Form, ...] = ("objects", "columns", "bybit")


@dataclass(frozen=True)
class Windows:
    """Windows of the market, each with its candles and the book at its last close."""

    market: SyntheticMarket
    ends: np.ndarray  # (n,) index of each window's last bar
    window: int

    def candles(self, k: int) -> Candles:
        end = int(self.ends[k])
        return self.market.candles[end - self.window + 1:end + 1]

    def book(self, k: int) -> Book:
        return self.market.book_at(int(self.ends[k]))

    def request(self, k: int, form: Form = "objects", **extra: Any) -> dict[str, Any]:
        c, end = self.candles(k), int(self.ends[k])
        m = self.market
        assert c.taker_buy_volume is not None, "the synthetic market always has taker-buy volume"
        names = ("ts", "open", "high", "low", "close", "volume", "taker_buy_volume")
        columns = {name: getattr(c, name).tolist() for name in names}
        book = {"bids": [[float(m.bid[end]), float(m.bid_size[end])]],
                "asks": [[float(m.ask[end]), float(m.ask_size[end])]]}
        window: dict[str, Any]
        if form == "columns":
            window = {"candles": columns}
        elif form == "objects":
            window = {"candles": [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(),
                                                                                      strict=True)]}
        else:  # Bybit: newest first, strings, no taker volume; fetched once the newest bar had closed
            rows = zip(*(columns[n] for n in ("ts", "open", "high", "low", "close", "volume")), strict=True)
            window = {"bybit_kline": [[*map(str, row), "0"] for row in reversed(list(rows))],
                      "bybit_time": int(c.ts[-1]) + 2 * int(c.ts[-1] - c.ts[-2])}
        return {"symbol": "SYNTH", **window, "book": book, **extra}

    def body(self, k: int, form: Form = "objects", **extra: Any) -> bytes:
        return orjson.dumps(self.request(k, form, **extra))

    def batch(self, first: int, size: int, form: Form = "columns") -> bytes:
        """A /predict/batch body of `size` consecutive windows of the rotation, starting at `first`."""
        items = [self.request((first + j) % len(self.ends), form) for j in range(size)]
        return orjson.dumps({"items": items})

    def as_features(self, ks: range | list[int]) -> features.Windows:
        """The same windows in the feature pipeline's batch form (what the service builds from the JSON)."""
        return features.stack([features.window_of(self.candles(k), self.book(k)) for k in ks])


def regime_mixed(per_regime: int, window: int = features.WINDOW, bars: int = BARS,
                 seed: int = SEED) -> Windows:
    """`per_regime` windows ending in each true regime, shuffled (fewer when a regime is rarer)."""
    market = simulate(bars, seed)
    rng = np.random.default_rng(seed)
    chosen = []
    for r in range(len(REGIMES)):
        candidates = np.flatnonzero(market.regime[window - 1:] == r) + window - 1
        if candidates.size:
            chosen.append(rng.choice(candidates, size=min(per_regime, candidates.size), replace=False))
    ends = rng.permutation(np.concatenate(chosen))
    return Windows(market, ends, window)


GRPC_INFER = f"/{proto.SERVICE}/ModelInfer"


def _features_tensor(x: np.ndarray, binary: bool) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "features", "shape": list(x.shape), "datatype": "FP32"}
    if binary:
        tensor["parameters"] = {"binary_data_size": x.nbytes}
    else:
        tensor["data"] = x.ravel().tolist()
    return tensor


def oip_json(x: np.ndarray) -> bytes:
    """POST /v2/models/{tier}/infer with the rows `x` (float32 [B, F]) as JSON; the answer in JSON."""
    return orjson.dumps({"inputs": [_features_tensor(x, binary=False)]})


def oip_binary(x: np.ndarray) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The rows as raw bytes after the JSON header, the answer asked in binary too (tritonclient's
    defaults), and the headers that go with the body."""
    header = orjson.dumps({"inputs": [_features_tensor(x, binary=True)],
                           "parameters": {"binary_data_output": True}})
    headers = ((oip.HEADER_LENGTH, str(len(header))), ("Content-Type", oip.BINARY_CONTENT_TYPE))
    return header + x.astype("<f4").tobytes(), headers


def grpc_infer(model: str, x: np.ndarray) -> bytes:
    """A serialized ModelInferRequest with the rows in raw_input_contents (what tritonclient.grpc sends)."""
    request = proto.messages().ModelInferRequest(model_name=model)
    request.inputs.add(name="features", datatype="FP32", shape=x.shape)
    request.raw_input_contents.append(x.astype("<f4").tobytes())
    return bytes(request.SerializeToString())
