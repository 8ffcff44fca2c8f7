"""Export: the golden parity check (same weights, PyTorch and onnxruntime) and its failure."""

import numpy as np
import onnx
import pytest
import torch

from training import export, nets
from training.errors import ParityError
from training.kinds import KINDS, Scale

F = 38


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = nets.MLP(rng.normal(size=F), rng.uniform(0.5, 2.0, F), nets.Shape(2, 16), 1)
    module = KINDS["regression"].head(net, Scale(mean=1e-4, std=2e-3)).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export.to_onnx({"tiny": module}, {"tiny": path}, F, "volatility")
    return module, path


def test_exported_graph_matches_pytorch_on_any_batch_size(exported):
    module, path = exported
    sess = export.session(path)
    rows = np.random.default_rng(1).normal(size=(257, F)).astype(np.float32)
    assert export.parity("tiny", module, sess, rows, 1e-5) <= 1e-5
    for batch in (1, 7):
        with torch.no_grad():
            expected = module(torch.from_numpy(rows[:batch])).numpy()
        np.testing.assert_allclose(export.run(sess, rows[:batch]), expected, atol=1e-6, rtol=0)


def test_exported_graph_has_the_contract_names_and_a_dynamic_batch(exported):
    _, path = exported
    graph = onnx.load(str(path)).graph
    (inp,), (out,) = graph.input, graph.output
    assert (inp.name, out.name) == ("features", "volatility")  # the output is named after the target
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == F


def test_parity_check_fails_when_the_graph_is_not_the_model(exported):
    _, path = exported
    other = KINDS["regression"].head(nets.MLP(np.zeros(F), np.ones(F), nets.Shape(2, 16), 1), Scale()).eval()
    rows = np.zeros((4, F), dtype=np.float32)
    with pytest.raises(ParityError, match="tolerance"):
        export.parity("tiny", other, export.session(path), rows, 1e-5)


def test_latency_is_a_positive_number_of_microseconds(exported):
    _, path = exported
    assert export.latency_us(export.session(path), np.zeros(F, dtype=np.float32), runs=10) > 0
