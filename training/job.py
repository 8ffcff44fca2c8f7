"""The training job: data and target → M0 on labels → M1..M3, each distilled from its predecessor → the
one-shot and direct baselines → the classical baselines → ONNX export with parity checks → scores and
the comparison with the best baseline → report → the family in the store.

    tiered train [--config FILE] [--source synthetic|csv:PATH|bybit:SYMBOL:INTERVAL]
                 [--target NAME] [--horizon K] [--seed N] [--out models/store] [--quick]

Randomness: every stage seeds its initial weights and its data order from the run seed and its tier
index (`training.stages`), the bootstrap from the run seed, and torch runs on a fixed number of threads,
so the same seed and config give the same ONNX bytes.
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
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from market import dataset, ranges, regime, sources
from market.dataset import Dataset
from models import scratch, store
from models.manifest import (
    ClassicalEntry,
    FeatureRanges,
    FeatureSection,
    Manifest,
    Metrics,
    Reference,
    RegimeSection,
    SkillSection,
    TargetSection,
    TensorSpec,
    TierEntry,
)
from training import baselines, export, nets, report, schedule, skill, stages, tiermap
from training.config import FitConfig, TrainConfig
from training.distill import Objective, Point
from training.evaluate import Scorer
from training.volscale import VolatilityScale

ROLES = ("teacher, research tier", "medium, staging tier", "small, production tier", "tiny, edge tier")
Scored = tuple[Metrics, dict[str, Metrics]]
Predictions = dict[str, np.ndarray]  # model name → (n, width) predictions on a split


@dataclass
class Member:
    """A network of the family (a tier or a network baseline) and how it was trained."""

    name: str
    role: str
    teacher: str | None
    index: int  # position of its shape in the family (baselines share M3's)
    stage: stages.Trained
    alpha: float | None
    temperature: float | None


class Job:
    def __init__(self, cfg: TrainConfig, *, start_ms: int = 0, end_ms: int = 0) -> None:
        self.cfg, self.start_ms, self.end_ms = cfg, start_ms, end_ms
        self.timing: dict[str, float] = {}
        self.volatility: VolatilityScale | None = None  # fitted with the data, when the target is scaled
        self.shapes = nets.family_shapes(cfg.family.schedule, cfg.family.shapes)
        self.stages = schedule.stages(cfg.schedule, len(self.shapes) - 1)

    def run(self, out: Path) -> Path:
        started = time.perf_counter()
        threads = torch.get_num_threads()
        torch.set_num_threads(self.cfg.threads)
        try:
            # numpy's BLAS (the classical baselines, the bootstrap) gets the same thread count as torch:
            # two OpenBLAS threads on the shared 2-core box spin-waited the logistic fit from 0.7 s to 3.3 s.
            with threadpool_limits(limits=self.cfg.threads, user_api="blas"):
                return self._run(out, started)
        finally:
            torch.set_num_threads(threads)  # the job may run inside another program (tests, benchmarks)

    def _run(self, out: Path, started: float) -> Path:
        ds, source = self._data()
        data = stages.tensors(ds)
        self.volatility = data.scale.volatility
        members = self._train(data)
        scorer = Scorer.for_split(ds, ds.test)
        classical, classical_predictions = self._classical(ds, data, scorer)
        references = self._references(ds, scorer)
        with tempfile.TemporaryDirectory(prefix=scratch.train_prefix()) as tmp:
            entries, predictions, validation, files = self._export(Path(tmp), ds, data, members, scorer)
            tick = time.perf_counter()
            verdict = skill.compare(data.kind, ds.target, ds.test.y, scorer.regimes, predictions,
                                    classical_predictions, seed=self.cfg.seed)
            self.timing["skill"] = time.perf_counter() - tick
            routing = self._routing(ds, data, validation)
            manifest = self._manifest(ds, source, entries, classical, references, verdict, routing)
            self.timing["total_seconds"] = time.perf_counter() - started
            body = report.build(manifest, _detector(ds), self._timing())
            curves = {m.name: m.stage.result.curve for m in members}
            written = report.write(manifest, body, curves, Path(tmp))
            files.update({p.name: p for p in written})
            family = store.write_family(out, manifest, files)
        print(report.table(manifest))
        print(f"\n{manifest.skill.verdict}")
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
            ds = dataset.build(source, self.cfg.target.build(),
                               fractions=(self.cfg.data.train_fraction, self.cfg.data.val_fraction))
            bar.update()
        self.timing["data"] = time.perf_counter() - tick
        return ds, source

    # -- training ---------------------------------------------------------------------------------

    def _train(self, data: stages.Tensors) -> list[Member]:
        cfg, kind = self.cfg, data.kind
        keep = cfg.curriculum.checkpoints if cfg.curriculum.checkpoints > 1 else 0
        m0 = self._stage(data, "M0", 0, None, Objective(kind), cfg.teacher, keep)
        chain = [m0]
        for stage in self.stages:
            objective = Objective(kind, stage.alpha, stage.temperature)
            chain.append(self._stage(data, f"M{stage.k}", stage.k, chain[-1], objective, cfg.student, keep))
        # Baselines: M3's shape, init and budget; one-shot with M3's α and T (and M0's checkpoints when the
        # curriculum is on), direct on labels only.
        last, m3 = self.stages[-1], len(self.shapes) - 1
        one_shot = self._stage(data, "one_shot", m3, m0, Objective(kind, last.alpha, last.temperature),
                               cfg.student, 0)
        direct = self._stage(data, "direct", m3, None, Objective(kind), cfg.student, 0)
        return [*chain, one_shot, direct]

    def _stage(self, data: stages.Tensors, name: str, index: int, teacher: Member | None,
               objective: Objective, budget: FitConfig, keep: int) -> Member:
        """Train the network of shape `index` from `teacher` (None: on labels); keep `keep` checkpoints."""
        tick = time.perf_counter()
        shape = self.shapes[index]
        steps, eval_every = stages.steps(data, budget)
        desc = f"{name:>8} {shape.layers}×{shape.width}" + (f" ← {teacher.name}" if teacher else "")
        with tqdm(total=math.ceil(steps / eval_every), desc=desc, file=sys.stderr, unit="eval") as bar:
            def show(p: Point) -> None:
                bar.update()
                bar.set_postfix(epoch=f"{p.epoch:.2f}", train=f"{p.train_loss:.4f}", val=f"{p.val_loss:.4f}")

            trained = stages.train_stage(data, shape, index=index, seed=self.cfg.seed, objective=objective,
                                         budget=budget, family=self.cfg.family,
                                         teacher=teacher.stage if teacher else None, keep=keep, on_eval=show)
        self.timing[name] = time.perf_counter() - tick
        distilled = teacher is not None
        return Member(name, ROLES[index] if name.startswith("M") else _baseline_role(teacher),
                      teacher.name if teacher else None, index, trained,
                      objective.alpha if distilled else None,
                      objective.temperature if distilled and data.kind.uses_temperature else None)

    def _classical(self, ds: Dataset, data: stages.Tensors,
                   scorer: Scorer) -> tuple[dict[str, ClassicalEntry], dict[str, np.ndarray]]:
        tick = time.perf_counter()
        entries, predictions = {}, {}
        for b in baselines.fit(ds, data.kind):
            predictions[b.name] = b.predict(ds.test)
            overall, per_regime = scorer.score(predictions[b.name])
            entries[b.name] = ClassicalEntry(name=b.name, description=b.description,
                                             coefficients=b.coefficients, fit_seconds=b.seconds,
                                             metrics=overall, per_regime=per_regime)
        self.timing["classical"] = time.perf_counter() - tick
        return entries, predictions

    def _references(self, ds: Dataset, scorer: Scorer) -> dict[str, Reference]:
        out = {}
        if scorer.oracle is not None:
            out["oracle"] = Reference(name="oracle", description="the simulator's exact best prediction "
                                      "of the target", metrics=scorer.oracle,
                                      per_regime=scorer.regime_oracle or {})
        sigma = baselines.sigma_reference(ds)
        if sigma is not None:
            overall, per_regime = scorer.score(sigma(ds.test))
            out["sigma_reference"] = Reference(
                name="σ-reference", description="least squares of y on ln σ_t, the simulator's true current "
                "volatility, fitted on the training split: what knowing σ_t alone gives (not an oracle)",
                metrics=overall, per_regime=per_regime)
        return out

    # -- export and scores ------------------------------------------------------------------------

    def _export(self, tmp: Path, ds: Dataset, data: stages.Tensors, members: list[Member], scorer: Scorer
                ) -> tuple[dict[str, TierEntry], Predictions, Predictions, dict[str, Path]]:
        """Every member exported, checked, timed and scored on the test split; the tiers' validation
        predictions too (the learned tier map reads them)."""
        cfg = self.cfg
        tick = time.perf_counter()
        held_out = ds.test.x[:cfg.export.parity_rows]
        entries: dict[str, TierEntry] = {}
        predictions: Predictions = {}
        validation: Predictions = {}
        files: dict[str, Path] = {}
        reference_params = nets.count_params(members[0].stage.net)
        m0: Scored | None = None
        modules = {m.name: data.kind.head(m.stage.net, data.scale).eval() for m in members}
        paths = {name: tmp / f"{name}.onnx" for name in modules}
        with tqdm(total=1, desc="export to ONNX", file=sys.stderr) as bar:
            export.to_onnx(modules, paths, ds.train.x.shape[1], ds.target.name)
            bar.update()
        for m in tqdm(members, desc="parity + score", file=sys.stderr, unit="model"):
            path, module = paths[m.name], modules[m.name]
            sess = export.session(path)
            diff = export.parity(m.name, module, sess, held_out, cfg.export.tolerance)
            latency = export.latency_us(sess, ds.test.x[0], cfg.export.latency_runs)
            predictions[m.name] = export.run(sess, ds.test.x)
            if m.name.startswith("M"):
                validation[m.name] = export.run(sess, ds.val.x)
            overall, per_regime = scorer.score(predictions[m.name])
            m0 = m0 or (overall, per_regime)
            overall = scorer.with_retention(overall, m0[0])
            per_regime = {r: scorer.with_retention(v, m0[1][r]) if r in m0[1] else v
                          for r, v in per_regime.items()}
            params = nets.count_params(m.stage.net)
            shape = self.shapes[m.index]
            entries[m.name] = TierEntry(
                name=m.name, role=m.role, teacher=m.teacher, file=path.name, sha256=store.sha256_file(path),
                layers=shape.layers, width=shape.width, params=params, compression=reference_params / params,
                alpha=m.alpha, temperature=m.temperature, metrics=overall, per_regime=per_regime,
                parity_max_abs_diff=diff, latency_us_batch1=latency, train_seconds=m.stage.result.seconds)
            files[path.name] = path
        self.timing["export"] = time.perf_counter() - tick
        return entries, predictions, validation, files

    def _routing(self, ds: Dataset, data: stages.Tensors, validation: Predictions) -> RegimeSection:
        """The regime section: thresholds, the learned map's evidence and the map in force."""
        cfg = self.cfg.routing
        detected = regime.detect(ds.val.signals, ds.thresholds)
        evidence = tiermap.learn(data.kind, ds.target, validation, ds.val.y, detected,
                                 [f"M{i}" for i in range(len(self.shapes))], cfg.tolerance)
        tier_map = dict(evidence.chosen) if cfg.tier_map == "learned" else dict(regime.DEFAULT_TIER_MAP)
        return RegimeSection(thresholds=ds.thresholds.to_dict(), tier_map=tier_map,
                             names=list(regime.REGIMES), tier_map_source=cfg.tier_map, learned=evidence)

    def _manifest(self, ds: Dataset, source: dataset.Source, entries: dict[str, TierEntry],
                  classical: dict[str, ClassicalEntry], references: dict[str, Reference],
                  verdict: SkillSection, routing: RegimeSection) -> Manifest:
        cfg, target = self.cfg, ds.target
        now = dt.datetime.now(dt.UTC)
        family_id = (f"{now:%Y%m%dT%H%M%SZ}-{source.kind}-{target.name}{target.horizon}-s{cfg.seed}-"
                     f"{uuid.uuid4().hex[:6]}")
        spec = ds.spec
        return Manifest(
            family_id=family_id, created_at=now.isoformat(timespec="seconds"), source=source.describe(),
            target=TargetSection.model_validate(target.describe()),
            features=FeatureSection(window=spec.window, version=spec.version, names=list(spec.names),
                                    use_book=spec.use_book, ranges=_ranges(ds)),
            input=TensorSpec(name=export.INPUT_NAME, shape=[None, len(spec.names)]),
            output=TensorSpec(name=target.name, shape=[None, target.width]),
            regime=routing,
            tiers=[entries[f"M{i}"] for i in range(len(self.shapes))],
            baselines={"one_shot": entries["one_shot"], "direct": entries["direct"]},
            classical=classical, references=references, skill=verdict, config=self._resolved(),
        )

    def _resolved(self) -> dict[str, Any]:
        resolved: dict[str, Any] = self.cfg.model_dump(mode="json")
        resolved["stages"] = [{"tier": f"M{s.k}", "alpha": s.alpha, "temperature": s.temperature}
                              for s in self.stages]
        if self.start_ms or self.end_ms:
            resolved["range_ms"] = [self.start_ms, self.end_ms]
        if self.volatility is not None:
            resolved["volatility_scale"] = self.volatility.describe()
        return resolved


def _ranges(ds: Dataset) -> FeatureRanges:
    """The training split's range of every feature, which the service compares each window with."""
    fitted = ranges.fit(ds.train.x, ds.spec.names)
    return FeatureRanges(quantiles=fitted.quantiles, rows=len(ds.train.x), bounds=fitted.bounds())


def _baseline_role(teacher: Member | None) -> str:
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
