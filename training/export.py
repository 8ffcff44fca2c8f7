"""Export tiers to ONNX, check them, prove they compute what PyTorch computes, and time them.

`torch.onnx.export` with the default (dynamo) exporter, an example batch of 2 and a dynamic batch
dimension; `onnx.checker` on every file; a parity check on held-out rows (the job fails past the
tolerance); batch-1 latency with onnxruntime on one thread, the way the service runs a single request.

All tiers go through one exporter call: each call pays a fixed ~1 s of CPU (it rebuilds the
aten→ONNX registry and re-runs decompositions), which made six separate exports the largest part of
`tiered train --quick`. The exported bundle, one output per tier, is then cut into one self-contained
model per tier with `onnx.utils.Extractor`, its output renamed to the contract's name (the target's).
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from training.errors import ParityError

INPUT_NAME = "features"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints progress lines, logs about optional packages and raises FutureWarnings
    from inside torch; none of it is ours to act on, and the suite turns warnings into errors."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


class _Bundle(nn.Module):
    """Several modules on the same input, one output each (only ever exported, never shipped)."""

    def __init__(self, modules: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(dict(modules))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(m(x) for m in self.parts.values())


def to_onnx(modules: Mapping[str, nn.Module], paths: Mapping[str, Path], in_features: int,
            output: str) -> None:
    """Write each module (raw features (B, F) → prediction) to its path, with a dynamic batch dimension
    and its one output named `output` (the target's name)."""
    bundle = _Bundle(modules).eval()
    outputs = {name: f"{output}__{name}" for name in modules}
    example = torch.zeros(2, in_features)  # batch ≥ 2, so the exporter does not specialise it to 1
    with _quiet():
        program = torch.onnx.export(bundle, (example,), input_names=[INPUT_NAME],
                                    output_names=list(outputs.values()),
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    assert program is not None
    extractor = onnx.utils.Extractor(program.model_proto)
    for name, inner in outputs.items():
        model = extractor.extract_model([INPUT_NAME], [inner])
        taken = {o for node in model.graph.node for o in node.output}
        taken |= {i.name for i in model.graph.initializer}
        assert output not in taken, f"the graph already holds a tensor named {output!r}"
        for node in model.graph.node:
            node.output[:] = [output if o == inner else o for o in node.output]
        model.graph.output[0].name = output
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(paths[name]))


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    output = sess.get_outputs()[0].name
    parts = [sess.run([output], {INPUT_NAME: x[i:i + chunk]})[0] for i in range(0, x.shape[0], chunk)]
    return np.concatenate(parts)


def parity(
    name: str, module: nn.Module, sess: ort.InferenceSession, x: np.ndarray, tolerance: float
) -> float:
    """Max abs difference between onnxruntime and PyTorch on rows `x`; ParityError past `tolerance`."""
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x)).numpy()
    got = run(sess, x)
    if got.shape != expected.shape:
        raise ParityError(name, float("inf"), tolerance)
    diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
    if not diff <= tolerance:  # also catches NaN
        raise ParityError(name, diff, tolerance)
    return diff


def latency_us(sess: ort.InferenceSession, row: np.ndarray, runs: int) -> float:
    """Median wall time of one batch-1 call, in microseconds (after a short warm-up)."""
    feed, fetch = {INPUT_NAME: row.reshape(1, -1).astype(np.float32)}, [sess.get_outputs()[0].name]
    for _ in range(min(20, runs)):
        sess.run(fetch, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        sess.run(fetch, feed)
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1e3
