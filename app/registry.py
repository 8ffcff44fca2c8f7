"""The tier registry: a family (the one CURRENT points at, or one named by its id) loaded into
onnxruntime sessions and verified.

`load_family` reads the manifest, checks that it describes the features this service computes
(`app/families.py`), and loads every tier: the file must sit inside the family directory, match the
manifest's sha256, load on the CPU provider, and have the manifest's input and output names and shapes.
A tier that fails is kept as unavailable with the reason; the others serve. Each session is warmed up
and its batch-1 latency measured, which the router's latency budget reads.

`Registry` holds one immutable `Family` and replaces it as a whole on reload: a request reads
`registry.family` once and uses that snapshot throughout, so it never mixes two families. A reload is
two steps, `prepare` (load and verify, serving nothing new) and `commit` (swap), so that the supervisor
can swap a family on every worker only once every worker has verified it (`app/control.py`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.errors import FamilyRefused
from app.families import Overrides, check_family
from market import features, targets
from market.ranges import Ranges
from market.regime import Thresholds
from models.manifest import Manifest, TensorSpec, TierEntry

WARMUP_RUNS = 20
TIMED_RUNS = 50


@dataclass(frozen=True)
class Tier:
    """One tier of the family: its manifest entry and, when it loaded, its session."""

    entry: TierEntry
    session: ort.InferenceSession | None
    problem: str | None  # why it is unavailable
    latency_us: float | None  # median batch-1 run time measured at load

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def available(self) -> bool:
        return self.session is not None


@dataclass(frozen=True)
class Family:
    directory: Path
    manifest: Manifest
    tiers: dict[str, Tier]  # largest first
    thresholds: Thresholds  # the manifest's, with settings' overrides applied
    ranges: Ranges | None  # the training split's feature ranges (market/ranges.py); None: not recorded

    @property
    def family_id(self) -> str:
        return self.manifest.family_id

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(self.tiers)

    @property
    def available(self) -> list[str]:
        return [name for name, tier in self.tiers.items() if tier.available]

    @cached_property
    def target(self) -> targets.Target:
        """What the family predicts, with the parameters it fitted (`market.targets`)."""
        t = self.manifest.target
        return targets.get(t.name, t.horizon, t.params)

    @property
    def trained_with_taker_volume(self) -> bool:
        """Whether the training candles had taker-buy volume, which the order-flow features read. A family
        whose manifest predates the record counts as trained with it unless its source was Bybit's klines
        (which have none): a window without it is then flagged as estimated rather than trusted."""
        recorded = self.manifest.source.get("taker_volume")
        return bool(recorded) if recorded is not None else self.manifest.source.get("kind") != "bybit"

    @property
    def problems(self) -> dict[str, str]:
        return {name: t.problem for name, t in self.tiers.items() if t.problem is not None}

    def run(self, tier: str, x: np.ndarray) -> np.ndarray:
        """(B, F) float32 → (B, K) float32 on one tier; the caller routed to an available tier."""
        session = self.tiers[tier].session
        assert session is not None, f"tier {tier} is unavailable; route before running"
        m = self.manifest
        return session.run([m.output.name], {m.input.name: x})[0]


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn a core between requests; a server shares its cores with the event loop.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def load_family(store: Path, threads: int = 1, overrides: Overrides | None = None,
                family_id: str | None = None) -> Family:
    """Load and verify the family `family_id` (None: the one CURRENT points at); raise FamilyRefused when
    the family is unusable. A family with some broken tiers loads, those tiers marked unavailable."""
    checked = check_family(store, family_id, overrides)
    directory, manifest = checked.directory, checked.manifest
    options = session_options(threads)
    ordered = sorted(manifest.tiers, key=lambda t: -t.params)
    tiers = {entry.name: _load_tier(store, directory, manifest, entry, options) for entry in ordered}
    return Family(directory, manifest, tiers, checked.thresholds, checked.ranges)


def _load_tier(store: Path, directory: Path, m: Manifest, entry: TierEntry,
               options: ort.SessionOptions) -> Tier:
    try:
        path = _tier_path(store, directory, entry.file)
        blob = path.read_bytes()
    except FileNotFoundError:
        return _unavailable(entry, f"{entry.file} is missing from the family; restore it or retrain")
    except ValueError as e:
        return _unavailable(entry, f"{entry.file} is refused: {e}")
    except OSError as e:  # strerror only: the full message would carry a file system path
        return _unavailable(entry, f"{entry.file} cannot be read: {e.strerror}")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry.sha256:
        return _unavailable(entry, f"{entry.file} has sha256 {digest[:12]}…, the manifest says "
                                   f"{entry.sha256[:12]}…: the file was changed; restore it or retrain")
    try:
        # Loading the bytes that were hashed: the file cannot change between the check and the load.
        session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises several unrelated types for a bad file
        first_line = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        return _unavailable(entry, f"{entry.file} does not load in onnxruntime: {first_line}")
    problem = _signature_problem(session, m.input, m.output)
    if problem:
        return _unavailable(entry, f"{entry.file}: {problem}")
    try:
        latency = _warm_up(session, m)
    except Exception as e:
        return _unavailable(entry, f"{entry.file} fails a warm-up run: {type(e).__name__}")
    return Tier(entry, session, None, latency)


def _tier_path(store: Path, directory: Path, file: str) -> Path:
    """The tier's file, which must be a plain name inside the family directory inside the store."""
    if not file or Path(file).name != file or file in (".", ".."):
        raise ValueError("the manifest names it with a path; only a file name inside the family is allowed")
    path = (directory / file).resolve()
    if not path.is_relative_to(store.resolve()):
        raise ValueError("it resolves outside the model store; models load only from the store")
    return path


def _unavailable(entry: TierEntry, problem: str) -> Tier:
    return Tier(entry, None, problem, None)


def _dims_match(actual: list[object], expected: list[int | None]) -> bool:
    if len(actual) != len(expected):
        return False
    # A dynamic dimension reads as None or a symbolic name in onnxruntime; a fixed one as an int.
    return all((e is None and not isinstance(a, int)) or (e is not None and a == e)
               for a, e in zip(actual, expected, strict=True))


def _signature_problem(session: ort.InferenceSession, inp: TensorSpec, out: TensorSpec) -> str | None:
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != inp.name:
        return f"inputs are {[i.name for i in inputs]}, the manifest says [{inp.name!r}]"
    if inputs[0].type != "tensor(float)" or not _dims_match(list(inputs[0].shape), inp.shape):
        return (f"input {inp.name} is {inputs[0].type} {inputs[0].shape}, "
                f"the manifest says float32 {inp.shape}")
    outputs = {o.name: o for o in session.get_outputs()}
    if out.name not in outputs:
        return f"outputs are {sorted(outputs)}, the manifest says {out.name!r}"
    if outputs[out.name].type != "tensor(float)":
        return f"output {out.name} is {outputs[out.name].type}, the manifest says float32"
    return None


def _warm_up(session: ort.InferenceSession, m: Manifest) -> float:
    x = np.zeros((1, len(features.FEATURE_NAMES)), dtype=np.float32)
    feed, fetch = {m.input.name: x}, [m.output.name]
    y = session.run(fetch, feed)[0]
    if y.shape != (1, m.output.shape[1]) or not np.isfinite(y).all():
        raise ValueError(f"output of shape {y.shape}")
    for _ in range(WARMUP_RUNS):
        session.run(fetch, feed)
    times = []
    for _ in range(TIMED_RUNS):
        start = time.perf_counter_ns()
        session.run(fetch, feed)
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times)) / 1e3


class Registry:
    """The family being served. It changes only as a whole: `load` at startup, or a new family that
    verified completely (`prepare`) swapped in by `commit`; a request reads `family` once."""

    def __init__(self, store: Path, threads: int = 1, overrides: Overrides | None = None) -> None:
        self.store, self.threads, self.overrides = store, threads, overrides
        self._family: Family | None = None
        self._reload_lock = threading.Lock()

    @property
    def family(self) -> Family:
        assert self._family is not None, "Registry.load() runs in the app's lifespan before any request"
        return self._family

    def load(self, family_id: str | None = None) -> Family:
        """Startup: serve whatever verified, even a degraded family; refuse only an unusable one."""
        family = load_family(self.store, self.threads, self.overrides, family_id)
        self._family = family
        return family

    def prepare(self, family_id: str | None = None) -> Family:
        """Load and verify a family without serving it; FamilyRefused unless every tier verified."""
        family = load_family(self.store, self.threads, self.overrides, family_id)
        if family.problems:
            details = "; ".join(f"{name}: {p}" for name, p in family.problems.items())
            raise FamilyRefused(f"family {family.family_id} was refused, {self.family.family_id} "
                                f"serves on: {details}")
        return family

    def commit(self, family: Family) -> None:
        self._family = family  # one reference swap: requests see the old family or the new one

    def reload(self, family_id: str | None = None) -> Family:
        """Load CURRENT (or `family_id`) again; keep the old family unless every tier of the new one
        verified."""
        with self._reload_lock:
            family = self.prepare(family_id)
            self.commit(family)
            return family
