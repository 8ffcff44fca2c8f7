"""The Open Inference Protocol v2 REST surface: every tier is a model with FP32 features in and the
prediction tensor out; errors come as {"error": "..."}."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from market.features import FEATURE_NAMES
from models.store import read_current

F = len(FEATURE_NAMES)


def infer_body(x: np.ndarray, nested: bool = False) -> dict[str, object]:
    data = x.tolist() if nested else x.ravel().tolist()
    tensor = {"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": data}
    return {"id": "req-1", "inputs": [tensor]}


def test_server_metadata_liveness_and_readiness(client):
    assert client.get("/v2").json() == {"name": "tiered", "version": "0.1.0", "extensions": []}
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_model_metadata_gives_inputs_and_the_output_named_after_the_target(client, manifest_data):
    meta = client.get("/v2/models/M2").json()
    assert meta == {"name": "M2", "versions": [manifest_data["family_id"]], "platform": "onnxruntime_onnx",
                    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, F]}],
                    "outputs": [{"name": manifest_data["target"]["name"], "datatype": "FP32",
                                 "shape": [-1, 1]}]}
    assert client.get("/v2/models/M2/ready").json() == {"name": "M2", "ready": True}


@pytest.mark.parametrize("nested", [False, True])
def test_infer_runs_the_tier_on_the_feature_tensor(client, quick_store, dataset, output_name, nested):
    x = dataset.test.x[:5]
    r = client.post("/v2/models/M1/infer", json=infer_body(x, nested))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["model_name"], out["id"]) == ("M1", "req-1")
    assert out["model_version"] == read_current(quick_store)
    [tensor] = out["outputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == (output_name, "FP32", [5, 1])
    session = ort.InferenceSession(str(quick_store / read_current(quick_store) / "M1.onnx"),
                                   providers=["CPUExecutionProvider"])
    expected = session.run([output_name], {"features": x})[0]
    got = np.array(tensor["data"], dtype=np.float32)
    np.testing.assert_allclose(got, expected.ravel(), rtol=1e-6, atol=1e-9)


def test_infer_accepts_a_request_for_the_targets_output(client, dataset, output_name):
    body = infer_body(dataset.test.x[:1]) | {"outputs": [{"name": output_name}]}
    assert client.post("/v2/models/M3/infer", json=body).status_code == 200


BAD = [
    ("wrong_input_name", lambda b: b["inputs"][0].update(name="x"), "features"),
    ("wrong_datatype", lambda b: b["inputs"][0].update(datatype="FP64"), "FP32"),
    ("wrong_width", lambda b: b["inputs"][0].update(shape=[2, 19]), f"[rows, {F}]"),
    ("data_count_mismatch", lambda b: b["inputs"][0].update(data=[0.0] * (2 * F - 1)), str(2 * F)),
    ("ragged_nested_data", lambda b: b["inputs"][0].update(data=[[0.0] * F, [0.0] * (F - 1)]), "same length"),
    ("nan_in_data", lambda b: b["inputs"][0]["data"].__setitem__(3, float("nan")), "finite"),
    ("string_in_data", lambda b: b["inputs"][0]["data"].__setitem__(3, "1.0"), "number"),
    ("beyond_float32", lambda b: b["inputs"][0]["data"].__setitem__(3, 1e39), "less than or equal"),
    ("no_inputs", lambda b: b.update(inputs=[]), "length >= 1"),
    ("unknown_output", lambda b: b.update(outputs=[{"name": "logits"}]), "logits"),
    ("zero_rows", lambda b: b["inputs"][0].update(shape=[0, F], data=[]), "rows"),
]


@pytest.mark.parametrize(("change", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_infer_rejects_a_bad_request_with_400_in_the_protocols_error_shape(client, change, words):
    body = infer_body(np.zeros((2, F), dtype=np.float32))
    change(body)
    headers = {"content-type": "application/json"}
    r = client.post("/v2/models/M0/infer", content=json.dumps(body), headers=headers)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and words in r.json()["error"], r.json()


def test_infer_rejects_malformed_json_with_400(client):
    r = client.post("/v2/models/M0/infer", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and set(r.json()) == {"error"}


@pytest.mark.parametrize("path", ["/v2/models/M9", "/v2/models/M9/ready"])
def test_an_unknown_model_is_404_in_the_protocols_error_shape(client, path):
    r = client.get(path)
    assert r.status_code == 404 and "M9" in r.json()["error"]


def test_infer_on_an_unknown_model_is_404(client):
    r = client.post("/v2/models/M9/infer", json=infer_body(np.zeros((1, F), dtype=np.float32)))
    assert r.status_code == 404 and "M9" in r.json()["error"]


def test_a_model_that_did_not_load_is_not_ready_and_refuses_inference(store_copy, client_for):
    store, family_dir = store_copy
    (family_dir / "M2.onnx").write_bytes(b"junk")
    with client_for(store) as c:
        ready = c.get("/v2/models/M2/ready")
        server = c.get("/v2/health/ready")
        infer = c.post("/v2/models/M2/infer", json=infer_body(np.zeros((1, F), dtype=np.float32)))
        other = c.post("/v2/models/M3/infer", json=infer_body(np.zeros((1, F), dtype=np.float32)))
    assert ready.status_code == 503 and "sha256" in ready.json()["error"]
    assert server.status_code == 503 and "M2" in server.json()["error"]
    assert infer.status_code == 503 and set(infer.json()) == {"error"}
    assert other.status_code == 200
