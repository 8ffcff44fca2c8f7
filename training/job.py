"""The training job: data → M0 on labels → M1..M3, each distilled from its predecessor → the one-shot and
direct baselines → ONNX export with parity checks → scores → report → the family in the store.

    tiered train [--config FILE] [--source synthetic|csv:PATH|bybit:SYMBOL:INTERVAL] [--task regression]
                 [--seed N] [--out models/store] [--quick]

Randomness: every stage seeds its initial weights and its data order from the run seed and its tier
index (M3 and both baselines share M3's, so they differ only in what they learn from), torch runs on a
fixed number of threads, so the same seed and config give the same ONNX bytes.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from market import dataset, regime, sources
from market.dataset import Dataset
from models import store
from models.manifest import FeatureSection, Manifest, Metrics, RegimeSection, TensorSpec, TierEntry
from training import distill, evaluate, export, nets, report, schedule
from training.config import FitConfig, TrainConfig
from training.distill import FitResult, FitSettings, Objective, Point, Teacher
from training.errors import TrainingError

ROLES = ("teacher, research tier", "medium, staging tier", "small, production tier", "tiny, edge tier")


@dataclass
class Trained:
    """A trained network and how it was trained."""

    name: str
    role: str
    teacher: str | None
    index: int  # position of its shape in the family (baselines share M3's)
    net: nets.MLP
    result: FitResult
    alpha: float | None
    temperature: float | None
    soft: list[torch.Tensor] | None = None  # its outputs on the training rows, once a student needs them


@dataclass(frozen=True)
class Tensors:
    x_mean: np.ndarray  # (F,) training-split statistics, built into every network
    x_std: np.ndarray
    x_train: torch.Tensor
    y_train: torch.Tensor  # standardised returns (n, 1), or class indices (n,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    y_mean: float
    y_std: float


def tensors(ds: Dataset, task: str) -> Tensors:
    for name, split in (("train", ds.train), ("validation", ds.val), ("test", ds.test)):
        bad = int((~np.isfinite(split.x)).any(axis=1).sum())
        if bad:
            raise TrainingError(f"{bad} {name} rows hold non-finite features; check the source data")
    if task == "classification":
        y_tr, y_va = (torch.from_numpy(ds.labels(s)) for s in (ds.train, ds.val))
        mean, std = 0.0, 1.0
    else:
        mean, std = float(ds.train.y.mean()), float(ds.train.y.std())
        scaled = [((s.y - mean) / std).astype(np.float32)[:, None] for s in (ds.train, ds.val)]
        y_tr, y_va = (torch.from_numpy(a) for a in scaled)
    x = ds.train.x
    return Tensors(x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64),
                   torch.from_numpy(x), y_tr, torch.from_numpy(ds.val.x), y_va, mean, std)


class Job:
    def __init__(self, cfg: TrainConfig, *, start_ms: int = 0, end_ms: int = 0) -> None:
        self.cfg, self.start_ms, self.end_ms = cfg, start_ms, end_ms
        self.timing: dict[str, float] = {}
        self.shapes = nets.family_shapes(cfg.family.schedule, cfg.family.shapes)
        self.stages = schedule.stages(cfg.schedule, len(self.shapes) - 1)

    def run(self, out: Path) -> Path:
        started = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(self.cfg.threads)
        try:
            return self._run(out, started)
        finally:
            torch.set_num_threads(threads)  # the job may run inside another program (tests, benchmarks)

    def _run(self, out: Path, started: float) -> Path:
        ds, source = self._data()
        data = tensors(ds, self.cfg.task)
        trained = self._train(data)
        scorer = evaluate.Scorer.for_split(ds, ds.test, self.cfg.task)
        with tempfile.TemporaryDirectory(prefix="tiered-train-") as tmp:
            manifest, files = self._export(Path(tmp), ds, source, data, trained, scorer)
            self.timing["total_seconds"] = time.perf_counter() - started
            body = report.build(manifest, scorer.oracle_r2, _detector(ds), self._timing())
            curves = {t.name: t.result.curve for t in trained}
            written = report.write(manifest, body, curves, Path(tmp), scorer.regime_oracle_r2)
            files.update({p.name: p for p in written})
            family = store.write_family(out, manifest, files)
        print(report.table(manifest))
        print(f"\nwrote {family} ({time.perf_counter() - started:.1f} s); CURRENT → {manifest.family_id}")
        return family

    def _timing(self) -> dict[str, float]:
        return {"total_seconds": self.timing["total_seconds"],
                **{k: v for k, v in self.timing.items() if k != "total_seconds"}}

    def _data(self) -> tuple[Dataset, dataset.Source]:
        tick = time.perf_counter()
        with tqdm(total=2, desc=f"data {self.cfg.source}", file=sys.stderr) as bar:
            source = sources.parse(self.cfg.source, bars=self.cfg.data.bars, seed=self.cfg.data.market_seed,
                                   start_ms=self.start_ms, end_ms=self.end_ms)
            bar.update()
            ds = dataset.build(source, fractions=(self.cfg.data.train_fraction, self.cfg.data.val_fraction))
            bar.update()
        self.timing["data"] = time.perf_counter() - tick
        return ds, source

    # -- training ---------------------------------------------------------------------------------

    def _train(self, data: Tensors) -> list[Trained]:
        cfg = self.cfg
        keep = cfg.curriculum.checkpoints if cfg.curriculum.checkpoints > 1 else 0
        m0 = self._stage(data, "M0", 0, None, Objective(cfg.task), cfg.teacher, keep)
        chain = [m0]
        for stage in self.stages:
            objective = Objective(cfg.task, stage.alpha, stage.temperature)
            chain.append(self._stage(data, f"M{stage.k}", stage.k, chain[-1], objective, cfg.student, keep))
        # Baselines: M3's shape, init and budget; one-shot with M3's α and T (and M0's checkpoints when the
        # curriculum is on), direct on labels only.
        last, m3 = self.stages[-1], len(self.shapes) - 1
        one_shot = self._stage(data, "one_shot", m3, m0, Objective(cfg.task, last.alpha, last.temperature),
                               cfg.student, 0)
        direct = self._stage(data, "direct", m3, None, Objective(cfg.task), cfg.student, 0)
        return [*chain, one_shot, direct]

    def _teachers(self, teacher: Trained, data: Tensors) -> list[Teacher]:
        """The teacher's outputs on the training rows (per checkpoint for the curriculum), computed once:
        M0's serve both M1 and the one-shot baseline."""
        if teacher.soft is None:
            checkpoints = teacher.result.checkpoints
            models = distill.as_teachers(teacher.net, checkpoints) if checkpoints else [teacher.net]
            teacher.soft = [distill.predict(m, data.x_train) for m in models]
        return list(teacher.soft)

    def _stage(self, data: Tensors, name: str, index: int, teacher: Trained | None, objective: Objective,
               budget: FitConfig, keep: int) -> Trained:
        """Train the network of shape `index` from `teacher` (None: on labels); keep `keep` checkpoints."""
        cfg = self.cfg
        tick = time.perf_counter()
        teachers = self._teachers(teacher, data) if teacher else []
        seed = cfg.seed * 1000 + index
        torch.manual_seed(seed)
        shape = self.shapes[index]
        out_features = 3 if cfg.task == "classification" else 1
        net = nets.MLP(data.x_mean, data.x_std, shape, out_features, cfg.family.input_skip,
                       cfg.family.activation)
        settings = FitSettings(**budget.model_dump(), seed=seed, keep_checkpoints=keep)
        steps, eval_every = distill.plan(len(data.x_train), settings)
        evals = math.ceil(steps / eval_every)
        desc = f"{name:>8} {shape.layers}×{shape.width}" + (f" ← {teacher.name}" if teacher else "")
        with tqdm(total=evals, desc=desc, file=sys.stderr, unit="eval") as bar:
            def show(p: Point) -> None:
                bar.update()
                bar.set_postfix(epoch=f"{p.epoch:.2f}", train=f"{p.train_loss:.4f}", val=f"{p.val_loss:.4f}")

            result = distill.fit(net, (data.x_train, data.y_train), (data.x_val, data.y_val), objective,
                                 settings, teachers=teachers, on_eval=show)
        self.timing[name] = time.perf_counter() - tick
        distilled = teacher is not None
        return Trained(name, ROLES[index] if name.startswith("M") else _baseline_role(name, teacher),
                       teacher.name if teacher else None, index, net, result,
                       objective.alpha if distilled else None,
                       objective.temperature if distilled and cfg.task == "classification" else None)

    # -- export and scores ------------------------------------------------------------------------

    def _export(self, tmp: Path, ds: Dataset, source: dataset.Source, data: Tensors,
                trained: list[Trained], scorer: evaluate.Scorer) -> tuple[Manifest, dict[str, Path]]:
        cfg = self.cfg
        tick = time.perf_counter()
        held_out = ds.test.x[:cfg.export.parity_rows]
        entries: dict[str, TierEntry] = {}
        files: dict[str, Path] = {}
        reference_params = nets.count_params(trained[0].net)
        m0_metrics: tuple[Metrics, dict[str, Metrics]] | None = None
        modules = {t.name: nets.Deployed(t.net, cfg.task, data.y_mean, data.y_std).eval() for t in trained}
        paths = {name: tmp / f"{name}.onnx" for name in modules}
        with tqdm(total=1, desc="export to ONNX", file=sys.stderr) as bar:
            export.to_onnx(modules, paths, ds.train.x.shape[1])
            bar.update()
        for t in tqdm(trained, desc="parity + score", file=sys.stderr, unit="model"):
            path, module = paths[t.name], modules[t.name]
            sess = export.session(path)
            diff = export.parity(t.name, module, sess, held_out, cfg.export.tolerance)
            latency = export.latency_us(sess, ds.test.x[0], cfg.export.latency_runs)
            overall, per_regime = scorer.score(export.run(sess, ds.test.x))
            if m0_metrics is None:
                m0_metrics = overall, per_regime
            overall = evaluate.with_retention(overall, m0_metrics[0])
            per_regime = {r: evaluate.with_retention(m, m0_metrics[1][r]) if r in m0_metrics[1] else m
                          for r, m in per_regime.items()}
            params = nets.count_params(t.net)
            shape = self.shapes[t.index]
            entries[t.name] = TierEntry(
                name=t.name, role=t.role, teacher=t.teacher, file=path.name, sha256=store.sha256_file(path),
                layers=shape.layers, width=shape.width, params=params, compression=reference_params / params,
                alpha=t.alpha, temperature=t.temperature, metrics=overall, per_regime=per_regime,
                parity_max_abs_diff=diff, latency_us_batch1=latency, train_seconds=t.result.seconds)
            files[path.name] = path
        self.timing["export"] = time.perf_counter() - tick
        return self._manifest(ds, source, entries), files

    def _manifest(self, ds: Dataset, source: dataset.Source, entries: dict[str, TierEntry]) -> Manifest:
        cfg = self.cfg
        now = dt.datetime.now(dt.UTC)
        family_id = f"{now:%Y%m%dT%H%M%SZ}-{source.kind}-{cfg.task}-s{cfg.seed}-{uuid.uuid4().hex[:6]}"
        spec = ds.spec
        out_shape = [None, 3] if cfg.task == "classification" else [None, 1]
        return Manifest(
            family_id=family_id, created_at=now.isoformat(timespec="seconds"), source=source.describe(),
            task=cfg.task,
            features=FeatureSection(window=spec.window, version=spec.version, names=list(spec.names),
                                    use_book=spec.use_book),
            input=TensorSpec(name=export.INPUT_NAME, shape=[None, len(spec.names)]),
            output=TensorSpec(name=export.OUTPUT_NAME, shape=out_shape),
            classes=list(dataset.CLASSES) if cfg.task == "classification" else None,
            flat_band=ds.flat_band,
            regime=RegimeSection(thresholds=ds.thresholds.to_dict(), tier_map=dict(regime.DEFAULT_TIER_MAP),
                                 names=list(regime.REGIMES)),
            tiers=[entries[f"M{i}"] for i in range(len(self.shapes))],
            baselines={"one_shot": entries["one_shot"], "direct": entries["direct"]},
            config=self._resolved(),
        )

    def _resolved(self) -> dict[str, Any]:
        resolved: dict[str, Any] = self.cfg.model_dump(mode="json")
        resolved["stages"] = [{"tier": f"M{s.k}", "alpha": s.alpha, "temperature": s.temperature}
                              for s in self.stages]
        if self.start_ms or self.end_ms:
            resolved["range_ms"] = [self.start_ms, self.end_ms]
        return resolved


def _baseline_role(name: str, teacher: Trained | None) -> str:
    if teacher is None:
        return "baseline: M3's shape trained on labels only"
    return f"baseline: M3's shape distilled straight from {teacher.name}"


def _detector(ds: Dataset) -> dict[str, Any] | None:
    """Agreement of the detector with the true regimes on the test split (synthetic data only).

    Confusion matrix rows are the true regime, columns the detected one, both in regime.REGIMES order.
    """
    if ds.test.true_regime is None:
        return None
    cm = regime.confusion_matrix(ds.test.true_regime, regime.detect(ds.test.signals, ds.thresholds))
    return {"balanced_accuracy": regime.balanced_accuracy(cm), "confusion_matrix": cm.tolist()}


def run(cfg: TrainConfig, out: Path, *, start_ms: int = 0, end_ms: int = 0) -> Path:
    return Job(cfg, start_ms=start_ms, end_ms=end_ms).run(out)
