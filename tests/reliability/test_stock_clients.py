"""The stock Open Inference Protocol clients against the real server (`tiered serve --grpc-port`, one for
the module, on free loopback ports): tritonclient.http with its defaults (binary tensors both ways) and
with binary_data=False, and tritonclient.grpc, on every tier and on the routed model `tiered`.

Tier outputs are onnxruntime's on the same tensors, bit for bit (sessions built with the server's own
options), and /predict's for the same windows forced to that tier; `tiered`'s are /predict's for the
same windows. Metadata, readiness and versioned paths; a wrong datatype, shape or byte count and an
unknown model or version, each refused with the protocol's status and a message naming the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from app.registry import session_options
from market import features
from market.candles import Candles
from market.regime import REGIMES
from models.store import read_current

pytestmark = pytest.mark.slow

COLUMNS = ("open", "high", "low", "close", "volume")
PER_REGIME = 2


class Served:
    """The server's two ports and a client of each kind."""

    def __init__(self, url: str, grpc_port: int) -> None:
        self.url = url
        self.http = httpclient.InferenceServerClient(url.removeprefix("http://"))
        self.grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")


@pytest.fixture(scope="module")
def served(quick_store: Path, serve: Any, free_port: Any,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("stock") / "server.log"
    grpc_port = free_port()
    with serve(quick_store, log, TIERED_GRPC_PORT=str(grpc_port)) as server:
        s = Served(server.url, grpc_port)
        yield s
        s.http.close()
        s.grpc.close()


@pytest.fixture(scope="module")
def windows(market: Any) -> tuple[np.ndarray, np.ndarray]:
    """PER_REGIME windows ending in each true regime: WINDOW float32 [B, W, 5] and TS int64 [B, W]."""
    c, w = market.candles, features.WINDOW
    ends = [int(e) for k in range(len(REGIMES))
            for e in (np.flatnonzero(market.regime[w:] == k) + w)[::997][:PER_REGIME]]
    bars = np.stack([np.stack([getattr(c, n)[e - w + 1:e + 1] for n in COLUMNS], axis=1) for e in ends])
    ts = np.stack([c.ts[e - w + 1:e + 1] for e in ends]).astype(np.int64)
    return bars.astype(np.float32), ts


@pytest.fixture(scope="module")
def feature_rows(windows: tuple[np.ndarray, np.ndarray], manifest: Any) -> np.ndarray:
    """The same windows' features, computed here with the one pipeline (no book, as sent to /predict)."""
    bars, ts = windows
    candles = [Candles(t, *b.T.astype(np.float64)) for b, t in zip(bars, ts, strict=True)]
    stacked = features.stack([features.window_of(c) for c in candles])
    return features.compute(stacked, use_book=manifest.features.use_book).x


@pytest.fixture(scope="module")
def manifest(quick_store: Path) -> Any:
    from models.store import load_current

    return load_current(quick_store)[1]


@pytest.fixture(scope="module")
def predicted(served: Served, windows: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    """/predict/batch on the same windows (their float32 values exactly), routed by regime."""
    return _predict(served, windows)


def _predict(served: Served, windows: tuple[np.ndarray, np.ndarray], tier: str | None = None) -> list[Any]:
    bars, ts = windows
    items = [{"candles": {"ts": ts[i].tolist(), **{n: bars[i, :, j].astype(np.float64).tolist()
                                                   for j, n in enumerate(COLUMNS)}},
              **({"tier": tier} if tier else {})} for i in range(len(bars))]
    r = httpx.post(f"{served.url}/predict/batch", json={"items": items}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["results"]  # type: ignore[no-any-return]


def _inputs(module: Any, arrays: dict[str, np.ndarray], binary: bool = True) -> list[Any]:
    out = []
    for name, values in arrays.items():
        tensor = module.InferInput(name, list(values.shape), "INT64" if values.dtype == np.int64 else "FP32")
        if module is httpclient:
            tensor.set_data_from_numpy(values, binary_data=binary)
        else:
            tensor.set_data_from_numpy(values)
        out.append(tensor)
    return out


CLIENTS = ["http", "http-json", "grpc"]


def _infer(served: Served, how: str, model: str, arrays: dict[str, np.ndarray], **options: Any) -> Any:
    """One inference with the stock client: its defaults, or (http-json) JSON tensors both ways."""
    if how == "grpc":
        return served.grpc.infer(model, _inputs(grpcclient, arrays), **options)
    if how == "http":
        return served.http.infer(model, _inputs(httpclient, arrays), **options)
    names = [o["name"] for o in served.http.get_model_metadata(model)["outputs"]]
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in names]
    return served.http.infer(model, _inputs(httpclient, arrays, binary=False), outputs=outputs, **options)


@pytest.mark.parametrize("how", CLIENTS)
@pytest.mark.parametrize("tier", ["M0", "M1", "M2", "M3"])
def test_a_tier_answers_onnxruntimes_output_bit_for_bit_and_predicts(served, quick_store, manifest,
                                                                     feature_rows, windows, how, tier):
    session = ort.InferenceSession(str(quick_store / read_current(quick_store) / f"{tier}.onnx"),
                                   session_options(1), providers=["CPUExecutionProvider"])
    output = manifest.output.name
    result = _infer(served, how, tier, {"features": feature_rows}, request_id="stock-1")
    got = result.as_numpy(output)
    np.testing.assert_array_equal(got, session.run([output], {"features": feature_rows})[0])
    assert got.dtype == np.float32 and got.shape == (len(feature_rows), 1)
    forced = _predict(served, windows, tier)
    assert [a["tier"] for a in forced] == [tier] * len(forced)
    assert got[:, 0].tolist() == [a["prediction"] for a in forced]
    response = result.get_response()
    assert (response.id if how == "grpc" else response["id"]) == "stock-1"


@pytest.mark.parametrize("how", CLIENTS)
def test_the_routed_model_answers_what_predict_answers(served, manifest, windows, predicted, how):
    bars, ts = windows
    labels = served.http.get_model_metadata("tiered")["properties"]
    tiers, regimes = labels["labels.TIER"].split(","), labels["labels.REGIME"].split(",")
    result = _infer(served, how, "tiered", {"WINDOW": bars, "TS": ts})
    assert result.as_numpy(manifest.output.name)[:, 0].tolist() == [a["prediction"] for a in predicted]
    assert [tiers[i] for i in result.as_numpy("TIER")[:, 0]] == [a["tier"] for a in predicted]
    assert [regimes[i] for i in result.as_numpy("REGIME")[:, 0]] == [a["regime"]["name"] for a in predicted]
    assert len({a["tier"] for a in predicted}) > 1, "the windows of every regime reach more than one tier"


@pytest.mark.parametrize("how", ["http", "grpc"])
def test_metadata_readiness_and_versioned_paths(served, quick_store, feature_rows, how):
    client = served.grpc if how == "grpc" else served.http
    version = read_current(quick_store)
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert "binary_tensor_data" in (meta.extensions if how == "grpc" else meta["extensions"])
    for model in ("M0", "M3", "tiered"):
        assert client.is_model_ready(model) and client.is_model_ready(model, version)
        m = client.get_model_metadata(model, version)
        assert list(m.versions if how == "grpc" else m["versions"]) == [version]
    result = _infer(served, how, "M2", {"features": feature_rows[:1]}, model_version=version)
    response = result.get_response()
    assert (response.model_version if how == "grpc" else response["model_version"]) == version


def _refusal(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("how", ["http", "grpc"])
def test_wrong_datatype_shape_byte_count_model_and_version_are_refused(served, feature_rows, how):
    module, client = (grpcclient, served.grpc) if how == "grpc" else (httpclient, served.http)
    bad_request, not_found = ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND") if how == "grpc" \
        else ("400", "404")

    def infer(model: str, values: np.ndarray, datatype: str, shape: list[int] | None = None,
              version: str = "") -> None:
        tensor = module.InferInput("features", list(values.shape), datatype)
        tensor.set_data_from_numpy(values)
        if shape is not None:  # the client checks shape against the array; changed after, bytes no longer fit
            tensor.set_shape(shape)
        client.infer(model, [tensor], model_version=version)

    x = feature_rows[:2]
    cases = [
        (lambda: infer("M1", x.astype(np.float64), "FP64"), bad_request, "send FP32"),
        (lambda: infer("M1", x[:, :40], "FP32"), bad_request, f"[rows, {x.shape[1]}]"),
        (lambda: infer("M1", x, "FP32", [3, x.shape[1]]), bad_request, f"needs {3 * x.shape[1] * 4}"),
        (lambda: infer("M7", x, "FP32"), not_found, "unknown model 'M7'"),
        (lambda: infer("M1", x, "FP32", version="1"), not_found, "no version '1'"),
    ]
    for call, status, words in cases:
        error = _refusal(call)
        assert error.status() == status and words in error.message(), (status, error)
