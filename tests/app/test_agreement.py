"""Train/serve agreement: for windows taken from the training data, the service computes the very
feature vector the training set holds, detects the same regime, and predicts what onnxruntime
predicts on that row."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from app import windows
from app.wire import Codec, Limits
from market.regime import REGIMES, Thresholds, detect
from models.store import read_current

CODEC = Codec(Limits(max_candles=2048, max_batch_items=256))


def window(body: dict[str, object]) -> windows.Window:
    return CODEC.query(json.dumps(body).encode(), "application/json").window

ROWS = [0, 1, 2500, 7000, -1]  # first, second, middle and last windows of the training split


@pytest.fixture(scope="module")
def sessions(quick_store):
    family_dir = quick_store / read_current(quick_store)
    return {name: ort.InferenceSession(str(family_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"])
            for name in ("M0", "M1", "M2", "M3")}


@pytest.mark.parametrize("row", ROWS)
def test_the_service_computes_the_training_sets_feature_vector(dataset, make_body, row):
    end = int(dataset.train.ends[row])
    prepared = windows.prepare([window(make_body(end=end))], 48, use_book=dataset.spec.use_book)
    np.testing.assert_array_equal(prepared.features.x[0], dataset.train.x[row])
    np.testing.assert_array_equal(prepared.features.signals[0], dataset.train.signals[row])


def test_windows_of_one_call_give_the_same_rows_as_each_alone(dataset, make_body):
    rows = [3, 400, 4000]
    together = windows.prepare([window(make_body(end=int(dataset.train.ends[r]))) for r in rows], 48,
                               use_book=True)
    np.testing.assert_array_equal(together.features.x, dataset.train.x[rows])


@pytest.mark.parametrize("row", ROWS)
def test_the_service_predicts_what_onnxruntime_predicts_on_the_training_row(
        client, dataset, make_body, sessions, manifest_data, output_name, row):
    end = int(dataset.train.ends[row])
    x = dataset.train.x[row:row + 1] if row >= 0 else dataset.train.x[row:]
    thresholds = Thresholds.from_dict(manifest_data["regime"]["thresholds"])
    regime = REGIMES[int(detect(dataset.train.signals[[row]], thresholds)[0])]
    for tier, session in sessions.items():
        out = client.post("/predict", json=make_body(end=end, tier=tier)).json()
        expected = float(session.run([output_name], {"features": x})[0][0, 0])
        assert out["tier"] == tier and out["regime"]["name"] == regime
        assert out["target"] == {k: manifest_data["target"][k] for k in ("name", "horizon", "units")}
        assert out["prediction"] == pytest.approx(expected, rel=1e-6, abs=1e-12)
