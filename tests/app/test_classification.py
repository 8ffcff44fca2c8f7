"""A family of a target with classes: /predict answers the class and its probabilities and names the
target, /v2 gives the probability tensor named after the target.

The family is made in tmp_path from the quick return family: each tier's graph gets a small head that
turns its return prediction r into softmax([-r, 0, r] · 1000) over (down, flat, up), and the manifest
says target direction. The service's path is the one a trained direction family takes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from market import targets  # noqa: E402
from market.features import FEATURE_NAMES  # noqa: E402

DIRECTION = targets.get("direction", 4)
CLASSES = list(DIRECTION.classes)
F = len(FEATURE_NAMES)


def add_class_head(path: Path, old_output: str) -> str:
    model = onnx.load(path)
    graph = model.graph
    for node in graph.node:  # the old output becomes an inner tensor
        node.output[:] = ["inner_return" if o == old_output else o for o in node.output]
    spread = np.array([[-1000.0, 0.0, 1000.0]], np.float32)
    graph.initializer.extend([numpy_helper.from_array(spread, "spread")])
    graph.node.extend([helper.make_node("MatMul", ["inner_return", "spread"], ["logits"]),
                       helper.make_node("Softmax", ["logits"], ["direction"], axis=1)])
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info("direction", TensorProto.FLOAT, [None, 3])])
    onnx.save(model, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def classification_store(store_copy, manifest_editor) -> Path:
    store, family_dir = store_copy

    def to_direction(m: dict[str, Any]) -> None:
        old_output = m["output"]["name"]
        m["target"] = {**DIRECTION.describe(), "params": {"band": 0.43}}
        m["output"] = {"name": "direction", "dtype": "float32", "shape": [None, 3]}
        for tier in m["tiers"]:
            tier["sha256"] = add_class_head(family_dir / tier["file"], old_output)
    manifest_editor(family_dir, to_direction)
    return store


def test_a_classification_family_answers_the_class_and_probabilities(
        classification_store, client_for, make_body):
    with client_for(classification_store) as c:
        out = c.post("/predict", json=make_body()).json()
        batch = c.post("/predict/batch", json={"items": [make_body(), make_body(end=2000)]}).json()
        tiers = c.get("/tiers").json()
    prediction = out["prediction"]
    assert set(prediction) == {"label", "probabilities"} and list(prediction["probabilities"]) == CLASSES
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert batch["results"][0]["prediction"] == prediction
    assert out["target"] == {"name": "direction", "horizon": 4, "units": DIRECTION.units}
    assert tiers["target"]["classes"] == CLASSES and tiers["target"]["kind"] == "classes"


def test_a_classification_tier_over_the_protocol_returns_the_probability_tensor(
        classification_store, client_for):
    body = {"inputs": [{"name": "features", "shape": [2, F], "datatype": "FP32", "data": [0.0] * 2 * F}]}
    with client_for(classification_store) as c:
        meta = c.get("/v2/models/M1").json()
        out = c.post("/v2/models/M1/infer", json=body).json()
    assert meta["outputs"] == [{"name": "direction", "datatype": "FP32", "shape": [-1, 3]}]
    assert out["outputs"][0]["shape"] == [2, 3] and len(out["outputs"][0]["data"]) == 6
