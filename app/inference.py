"""The Open Inference Protocol without its transports: the models this server offers, their metadata
and readiness, and inference on them. REST (`app/oip.py`) and gRPC (`app/grpc_server.py`) turn their
messages into a `Request` and a `Result` back into their messages, and do nothing else.

Models, each of one version, the served family's id:
  * every tier (M0..M3): `features` FP32 [rows, F] in (F = len(market.features.FEATURE_NAMES)), one
    output named after the family's target (e.g. `return`) FP32 [rows, K] out: onnxruntime on exactly
    the tensor given, once checked, with no routing (`DataPlane.infer`);
  * `tiered`, the routed model: a raw market window in, the answer of the tier its regime chose out,
    through the same data plane as POST /predict (`app/routed.py`).
A request names a model and, optionally, a version; any other version is UnknownModel naming the one
served. The outputs are all of the model's, or those the request names, in its order. Every call reads
the registry's family once, so metadata, checks and answer come from one family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from app import tensors
from app.dataplane import DataPlane
from app.errors import BadRequest, TierUnavailable, UnknownModel
from app.registry import Family
from app.tensors import Incoming
from app.wire import Limits
from market.features import FEATURE_NAMES

SERVER_NAME, SERVER_VERSION = "tiered", "0.1.0"
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "onnxruntime_onnx"
FEATURES = "features"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1: any size


@dataclass(frozen=True)
class ModelInfo:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    properties: dict[str, str]  # the protocol's free-form string map: label maps, optional inputs


@dataclass(frozen=True)
class Request:
    model: str
    version: str | None
    inputs: list[Incoming]
    outputs: list[str] | None = None  # the names asked for; None: every output
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    model: str
    version: str  # the family that answered
    outputs: list[tuple[str, np.ndarray]]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


class Model(Protocol):
    name: str

    def info(self, family: Family) -> ModelInfo: ...

    def problem(self, family: Family) -> str | None:
        """Why the model cannot answer now; None when it is ready."""

    async def infer(self, request: Request, family: Family) -> Result:
        """Every output of the model, in its own order."""


def inputs_by_name(request: Request, takes: dict[str, tuple[str, bool]]) -> dict[str, Incoming]:
    """The request's inputs by name, each the datatype the model takes (`takes`: name → (datatype,
    required)); BadRequest for an unknown, repeated or missing input and for another datatype."""
    described = ", ".join(f"{n} ({d}{'' if required else ', optional'})"
                          for n, (d, required) in takes.items())
    found: dict[str, Incoming] = {}
    for t in request.inputs:
        if t.name not in takes:
            raise BadRequest(f"unknown input {t.name!r}; model {request.model} takes {described}")
        if t.name in found:
            raise BadRequest(f"input {t.name} is given twice; send each input once")
        if t.datatype != takes[t.name][0]:
            raise BadRequest(f"input {t.name} has datatype {t.datatype}; send {takes[t.name][0]}")
        found[t.name] = t
    missing = [n for n, (_, required) in takes.items() if required and n not in found]
    if missing:
        raise BadRequest(f"input {missing[0]} is missing; model {request.model} takes {described}")
    return found


def finite(name: str, values: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where, value = tensors.element(name, values.shape, int(bad[0])), float(values.ravel()[bad[0]])
        raise BadRequest(f"{where} is not a finite number (got {value!r}); send finite numbers")
    return values


class TierModel:
    """One tier on a feature tensor the client computed (with `market.features`, as training did)."""

    def __init__(self, name: str, plane: DataPlane, limits: Limits) -> None:
        self.name, self.plane, self.limits = name, plane, limits

    def info(self, family: Family) -> ModelInfo:
        m = family.manifest
        properties = {"family_id": family.family_id, "target": m.target.name,
                      "horizon": str(m.target.horizon), "units": m.target.units,
                      "feature_names": ",".join(FEATURE_NAMES)}
        if m.target.classes:
            properties[f"labels.{m.output.name}"] = ",".join(m.target.classes)
        return ModelInfo(self.name, [family.family_id], PLATFORM,
                         [TensorInfo(FEATURES, "FP32", (-1, len(FEATURE_NAMES)))],
                         [TensorInfo(m.output.name, "FP32", (-1, m.target.width))], properties)

    def problem(self, family: Family) -> str | None:
        return family.tiers[self.name].problem

    async def infer(self, request: Request, family: Family) -> Result:
        t = inputs_by_name(request, {FEATURES: ("FP32", True)})[FEATURES]
        width = len(FEATURE_NAMES)
        if len(t.shape) != 2 or t.shape[1] != width or not 1 <= t.shape[0] <= self.limits.max_batch_items:
            raise BadRequest(f"input {t.name} has shape {list(t.shape)}; send [rows, {width}] with 1 ≤ rows "
                             f"≤ {self.limits.max_batch_items} (TIERED_MAX_BATCH_ITEMS)")
        x = finite(t.name, tensors.array(t))
        done = self.plane.infer(self.name, x, family)
        return Result(self.name, done.family.family_id, [(done.family.manifest.output.name, done.y)],
                      parameters=out_of_range(done.out_of_range))


def out_of_range(rows: dict[int, list[str]]) -> dict[str, Any]:
    """The response's `parameters.out_of_range` ("row 0: logrange_lag0, volatility; ..."), naming the rows
    outside the family's training range and their features; nothing when none is (parameter values are
    scalars in the protocol, hence a string)."""
    flagged = "; ".join(f"row {row}: {', '.join(names)}" for row, names in sorted(rows.items()))
    return {"out_of_range": flagged} if flagged else {}


class Inference:
    """The protocol's operations, over one data plane; what the transports call."""

    def __init__(self, plane: DataPlane, limits: Limits, routed: Model) -> None:
        self.plane, self.limits, self.routed = plane, limits, routed  # routed: `app.routed.RoutedModel`

    @property
    def family(self) -> Family:
        return self.plane.registry.family

    def names(self, family: Family) -> list[str]:
        return [self.routed.name, *family.order]

    def model(self, family: Family, name: str, version: str | None = None) -> Model:
        found: Model
        if name == self.routed.name:
            found = self.routed
        elif name in family.tiers:
            found = TierModel(name, self.plane, self.limits)
        else:
            raise UnknownModel(f"unknown model {name!r}; this server serves {self.names(family)}",
                               "model_name")
        if version and version != family.family_id:
            raise UnknownModel(f"model {name} has no version {version!r}; this server serves version "
                               f"{family.family_id} (the family's id)", "model_version")
        return found

    def metadata(self, name: str, version: str | None = None) -> ModelInfo:
        family = self.family
        return self.model(family, name, version).info(family)

    def model_problem(self, name: str, version: str | None = None) -> str | None:
        family = self.family
        return self.model(family, name, version).problem(family)

    def check_ready(self, name: str, version: str | None = None) -> None:
        problem = self.model_problem(name, version)
        if problem is not None:
            raise TierUnavailable(f"model {name} is not ready: {problem}")

    def server_problem(self) -> str | None:
        """Why not every model is ready (the protocol's server readiness); None when all are."""
        problems = self.family.problems
        return "; ".join(f"{name}: {problem}" for name, problem in problems.items()) or None

    async def infer(self, request: Request) -> Result:
        family = self.family
        model = self.model(family, request.model, request.version)
        problem = model.problem(family)
        if problem is not None:
            raise TierUnavailable(f"model {model.name} is not ready: {problem}")
        names = [o.name for o in model.info(family).outputs]
        for wanted in request.outputs or []:
            if wanted not in names:
                raise BadRequest(f"unknown output {wanted!r}; model {model.name} has {names}")
        result = await model.infer(request, family)
        if request.outputs:
            by_name = dict(result.outputs)
            result = Result(result.model, result.version, [(n, by_name[n]) for n in request.outputs],
                            result.id, result.parameters)
        return Result(result.model, result.version, result.outputs, request.id, result.parameters)
