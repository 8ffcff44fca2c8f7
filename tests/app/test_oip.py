"""The Open Inference Protocol v2 over REST, in-process: every tier is a model with FP32 features in and
the prediction tensor out; bodies are JSON whatever their Content-Type, or a JSON header followed by
binary tensors; versioned paths take the family's id; errors come as {"error": "..."}.

The stock clients against the real server are in test_stock_clients.py; the routed model in test_routed.py.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from app import oip
from app.inference import EXTENSIONS
from market.features import FEATURE_NAMES
from models.store import read_current

F = len(FEATURE_NAMES)
HEADER = oip.HEADER_LENGTH


def infer_body(x: np.ndarray, nested: bool = False) -> dict[str, object]:
    data = x.tolist() if nested else x.ravel().tolist()
    tensor = {"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": data}
    return {"id": "req-1", "inputs": [tensor]}


def binary_body(x: np.ndarray, **request: object) -> tuple[bytes, dict[str, str]]:
    """A request with `x` as raw little-endian bytes after its JSON header, as tritonclient sends it."""
    raw = x.astype("<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}], **request}).encode()
    return header + raw, {HEADER: str(len(header))}


def split_binary(r) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """A binary response: its JSON header and each raw output as float32."""
    n = int(r.headers[HEADER])
    header = json.loads(r.content[:n])
    raw, offset = {}, n
    for out in header["outputs"]:
        size = out["parameters"]["binary_data_size"]
        raw[out["name"]] = np.frombuffer(r.content[offset:offset + size], dtype="<f4").reshape(out["shape"])
        offset += size
    assert offset == len(r.content)
    return header, raw


@pytest.fixture(scope="module")
def session(quick_store) -> ort.InferenceSession:
    return ort.InferenceSession(str(quick_store / read_current(quick_store) / "M1.onnx"),
                                providers=["CPUExecutionProvider"])


def test_server_metadata_liveness_and_readiness(client):
    assert client.get("/v2").json() == {"name": "tiered", "version": "0.1.0", "extensions": list(EXTENSIONS)}
    assert "binary_tensor_data" in EXTENSIONS
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_model_metadata_gives_inputs_the_output_named_after_the_target_and_properties(client, manifest_data):
    meta = client.get("/v2/models/M2").json()
    properties = meta.pop("properties")
    assert meta == {"name": "M2", "versions": [manifest_data["family_id"]], "platform": "onnxruntime_onnx",
                    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, F]}],
                    "outputs": [{"name": manifest_data["target"]["name"], "datatype": "FP32",
                                 "shape": [-1, 1]}]}
    assert properties["feature_names"].split(",") == list(FEATURE_NAMES)
    assert properties["family_id"] == manifest_data["family_id"]
    assert client.get("/v2/models/M2/ready").json() == {"name": "M2", "ready": True}


@pytest.mark.parametrize("nested", [False, True])
def test_infer_runs_the_tier_on_the_feature_tensor_bit_for_bit(client, quick_store, dataset, output_name,
                                                               session, nested):
    x = dataset.test.x[:5]
    r = client.post("/v2/models/M1/infer", json=infer_body(x, nested))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["model_name"], out["id"]) == ("M1", "req-1")
    assert out["model_version"] == read_current(quick_store)
    [tensor] = out["outputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == (output_name, "FP32", [5, 1])
    expected = session.run([output_name], {"features": x})[0]
    np.testing.assert_array_equal(np.array(tensor["data"], dtype=np.float32).reshape(5, 1), expected)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_a_body_is_read_as_json_whatever_its_content_type(client, dataset, content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps(infer_body(dataset.test.x[:2])).encode()
    r = client.post("/v2/models/M3/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    # The service's own endpoints keep their rule: JSON is declared.
    assert client.post("/predict", content=b"{}", headers=headers).status_code == 422


def test_binary_tensors_in_and_out_give_onnxruntimes_output_bit_for_bit(client, dataset, output_name,
                                                                         session):
    x = dataset.test.x[:7]
    body, headers = binary_body(x, id="b-1", parameters={"binary_data_output": True})
    r = client.post("/v2/models/M1/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == oip.BINARY_CONTENT_TYPE
    header, raw = split_binary(r)
    assert header["id"] == "b-1" and header["outputs"][0]["parameters"] == {"binary_data_size": 7 * 4}
    np.testing.assert_array_equal(raw[output_name], session.run([output_name], {"features": x})[0])


def test_an_outputs_own_binary_data_parameter_wins_over_the_requests(client, dataset, output_name):
    body, headers = binary_body(dataset.test.x[:2], parameters={"binary_data_output": True},
                                outputs=[{"name": output_name, "parameters": {"binary_data": False}}])
    r = client.post("/v2/models/M0/infer", content=body, headers=headers)
    assert r.status_code == 200 and HEADER not in r.headers
    assert len(r.json()["outputs"][0]["data"]) == 2


def test_outputs_are_selected_by_name_and_parameters_accepted(client, dataset, output_name):
    body = infer_body(dataset.test.x[:1]) | {"outputs": [{"name": output_name}],
                                             "parameters": {"priority": 0, "sequence_id": "none"}}
    assert client.post("/v2/models/M3/infer", json=body).status_code == 200
    unknown = client.post("/v2/models/M3/infer", json=infer_body(dataset.test.x[:1]) | {
        "outputs": [{"name": "logits"}]})
    assert unknown.status_code == 400 and "logits" in unknown.json()["error"]
    assert output_name in unknown.json()["error"]


@pytest.mark.parametrize("model", ["M2", "tiered"])
def test_versioned_paths_answer_like_the_unversioned_ones(client, quick_store, dataset, model):
    version = read_current(quick_store)
    base = f"/v2/models/{model}"
    assert client.get(f"{base}/versions/{version}").json() == client.get(base).json()
    assert client.get(f"{base}/versions/{version}/ready").json() == {"name": model, "ready": True}
    if model == "M2":
        body = infer_body(dataset.test.x[:3])
        versioned = client.post(f"{base}/versions/{version}/infer", json=body)
        plain = client.post(f"{base}/infer", json=body)
        assert versioned.status_code == 200 and versioned.json() == plain.json()


@pytest.mark.parametrize("tail", ["", "/ready", "/infer"])
def test_another_version_is_404_naming_the_served_one(client, quick_store, dataset, tail):
    path = f"/v2/models/M2/versions/20200101T000000Z-old{tail}"
    r = client.post(path, json=infer_body(dataset.test.x[:1])) if tail == "/infer" else client.get(path)
    assert r.status_code == 404 and set(r.json()) == {"error"}
    assert "20200101T000000Z-old" in r.json()["error"] and read_current(quick_store) in r.json()["error"]


BAD = [
    ("wrong_input_name", lambda b: b["inputs"][0].update(name="x"), "features"),
    ("wrong_datatype", lambda b: b["inputs"][0].update(datatype="FP64"), "FP32"),
    ("unknown_datatype", lambda b: b["inputs"][0].update(datatype="FLOAT"), "FP32"),
    ("wrong_width", lambda b: b["inputs"][0].update(shape=[2, 19]), f"[rows, {F}]"),
    ("fractional_shape", lambda b: b["inputs"][0].update(shape=[2.5, F]), "whole"),
    ("data_count_mismatch", lambda b: b["inputs"][0].update(data=[0.0] * (2 * F - 1)), str(2 * F)),
    ("ragged_nested_data", lambda b: b["inputs"][0].update(data=[[0.0] * F, [0.0] * (F - 1)]), "same length"),
    ("nan_in_data", lambda b: b["inputs"][0]["data"].__setitem__(3, float("nan")), "features[0][3]"),
    ("string_in_data", lambda b: b["inputs"][0]["data"].__setitem__(3, "1.0"), "number"),
    ("beyond_float32", lambda b: b["inputs"][0]["data"].__setitem__(3, 1e39), "less than or equal"),
    ("no_inputs", lambda b: b.update(inputs=[]), "length >= 1"),
    ("input_twice", lambda b: b["inputs"].append(dict(b["inputs"][0])), "twice"),
    ("no_data", lambda b: b["inputs"][0].pop("data"), "binary_data_size"),
    ("unknown_output", lambda b: b.update(outputs=[{"name": "logits"}]), "logits"),
    ("classification", lambda b: b.update(outputs=[{"name": "x", "parameters": {"classification": 2}}]),
     "classification"),
    ("zero_rows", lambda b: b["inputs"][0].update(shape=[0, F], data=[]), "rows"),
]


@pytest.mark.parametrize(("change", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_infer_rejects_a_bad_request_with_400_in_the_protocols_error_shape(client, change, words):
    body = infer_body(np.zeros((2, F), dtype=np.float32))
    change(body)
    r = client.post("/v2/models/M0/infer", content=json.dumps(body))
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and words in r.json()["error"], r.json()


BAD_BINARY = [
    ("header_length_beyond_the_body", lambda b, h: (b, {HEADER: str(len(b) + 1)}), "beyond the body"),
    ("header_length_not_a_number", lambda b, h: (b, {HEADER: "ten"}), HEADER),
    ("one_byte_missing", lambda b, h: (b[:-1], h), "bytes follow the JSON header"),
    ("one_byte_too_many", lambda b, h: (b + b"\0", h), "not claimed"),
    ("no_header_length", lambda b, h: (b, {}), HEADER),
]


@pytest.mark.parametrize(("change", "words"), [b[1:] for b in BAD_BINARY], ids=[b[0] for b in BAD_BINARY])
def test_a_malformed_binary_request_is_a_400_saying_what_is_wrong(client, change, words):
    body, headers = change(*binary_body(np.zeros((2, F), dtype=np.float32)))
    r = client.post("/v2/models/M2/infer", content=body, headers=headers)
    assert r.status_code == 400 and words in r.json()["error"], r.text


def test_a_binary_size_that_is_not_shape_times_datatype_is_refused(client):
    raw = np.zeros(2 * F - 1, dtype="<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "features", "shape": [2, F], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    r = client.post("/v2/models/M2/infer", content=header + raw, headers={HEADER: str(len(header))})
    assert r.status_code == 400
    assert r.json()["error"] == (f"input features: {len(raw)} bytes of binary data; shape [2, {F}] of FP32 "
                                 f"needs {2 * F * 4} ({2 * F} × 4 bytes)")


def test_a_compressed_body_is_refused_with_the_fix(client, dataset):
    r = client.post("/v2/models/M2/infer", json=infer_body(dataset.test.x[:1]),
                    headers={"content-encoding": "gzip"})
    assert r.status_code == 400 and "uncompressed" in r.json()["error"]


def test_infer_rejects_malformed_json_with_400(client):
    r = client.post("/v2/models/M0/infer", content=b"{")
    assert r.status_code == 400 and set(r.json()) == {"error"}


@pytest.mark.parametrize("path", ["/v2/models/M9", "/v2/models/M9/ready"])
def test_an_unknown_model_is_404_in_the_protocols_error_shape(client, path):
    r = client.get(path)
    assert r.status_code == 404 and "M9" in r.json()["error"] and "tiered" in r.json()["error"]


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
        routed = c.get("/v2/models/tiered/ready")
    assert ready.status_code == 503 and "sha256" in ready.json()["error"]
    assert server.status_code == 503 and "M2" in server.json()["error"]
    assert infer.status_code == 503 and set(infer.json()) == {"error"}
    assert other.status_code == 200
    assert routed.status_code == 200, "the routed model falls back to the tiers that loaded"
