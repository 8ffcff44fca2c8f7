"""Distillation quality across seeds: the progressive chain against one-shot and direct training of M3's
shape, the width-only and depth-only schedules against the combined one, the α/T schedule against fixed
values, and what the chain costs in training time.

    python -m bench.distill [--quick]

Every network is trained by `training.stages.train_stage`, the function the training job builds its
family with (same seeding, sizes and budgets), but without the ONNX export and the store: the comparison
needs scores, not families, and the job trains a fixed set of models. Scores are computed in PyTorch on
the test split through the target kind's exported head (the export's parity check bounds the difference
to ONNX at 1e-5). One M0 per data set teaches every seed's students, so comparisons are paired; seeds
vary the students' initial weights and data order; the market is fixed (the config's seed). Tables,
plot and reading: `bench/distill_report.py`.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from bench.common import ROOT, cli
from bench.distill_report import markdown, plot, row_of, shown
from market import dataset, sources
from training import config, nets, schedule, stages
from training.config import FitConfig, TrainConfig
from training.distill import Objective, predict
from training.evaluate import Scorer

OHLCV = ROOT / ".." / "shared" / "data" / "ohlcv"
FIXED = ((0.5, 2.0), (0.9, 4.0))  # (α, T) held at every stage, against the schedule
METRICS = ("r2", "balanced_accuracy", "accuracy", "directional_accuracy", "oracle_share", "retention",
           "seconds", "cpu_seconds")
Scores = dict[str, Any]
SeedResult = dict[str, list[tuple[str, Scores]]]  # variant → [(tier, scores)]


@dataclass(frozen=True)
class Plan:
    """How much to train. Full mode measures the default family itself: the default config's market, bars
    and budgets for the return target (the synthetic market needs its 1.4M bars for M0 to learn the hard
    regimes' interactions; on 300K bars even M0 does not). The fixed-α/T variants run on three seeds, the
    width-only and depth-only chains on one, and the direction target (the only one where T acts) on a
    smaller market."""

    seeds: tuple[int, ...]  # chain, one-shot and direct (synthetic return and real candles)
    variant_seeds: tuple[int, ...]  # fixed α/T; everything on direction
    shape_seeds: tuple[int, ...]  # width-only and depth-only chains
    bars: int | None  # synthetic bars for the return target (None: the config's)
    direction_bars: int | None
    teacher_epochs: float | None  # synthetic data (None: the config's)
    student_epochs: float | None
    real_epochs: float | None  # M0 and students on real candles (a few thousand rows; None: the config's)
    real_candles: int | None  # cap on candles per real file (None: the whole file)
    direction: bool = True  # also the direction target on `direction_bars`
    real: bool = True  # also the real candle files
    # One torch thread: with other jobs on the 2 cores, two threads spin-wait on each other and a step
    # got up to 8x slower in wall time (measured); one thread keeps CPU seconds comparable between runs.
    threads: int = 1


FULL = Plan(seeds=(0, 1, 2, 3, 4), variant_seeds=(0, 1, 2), shape_seeds=(0,), bars=None,
            direction_bars=400_000, teacher_epochs=None, student_epochs=None, real_epochs=30,
            real_candles=None)
# The question the default family raises, alone: chain, one-shot and direct over five seeds and the
# α schedule against a fixed α, on the return target (`python -m bench.distill --plan core`; about an
# hour of one core, where the full plan needs about two).
CORE = replace(FULL, shape_seeds=(), direction=False, real=False)
PLANS = {"full": FULL, "core": CORE}
QUICK = Plan(seeds=(0, 1), variant_seeds=(0,), shape_seeds=(0,), bars=8_000, direction_bars=8_000,
             teacher_epochs=1, student_epochs=1, real_epochs=None, real_candles=3_000)


class Bench:
    """One data set and target: trains and scores the models of the comparison."""

    def __init__(self, cfg: TrainConfig, ds: dataset.Dataset) -> None:
        self.cfg, self.ds = cfg, ds
        self.data = stages.tensors(ds)
        self.kind = self.data.kind
        self.scorer = Scorer.for_split(ds, ds.test)
        d, family = self.data, cfg.family
        m0 = nets.MLP(d.x_mean, d.x_std, nets.Shape(*nets.SCHEDULES["combined"][0]), d.width,
                      family.input_skip, family.activation)
        self.reference = nets.count_params(m0)

    def train(self, shape: tuple[int, int], index: int, seed: int, teacher: stages.Trained | None,
              objective: Objective, budget: FitConfig) -> stages.Trained:
        return stages.train_stage(self.data, nets.Shape(*shape), index=index, seed=seed, objective=objective,
                                  budget=budget, family=self.cfg.family, teacher=teacher)

    def score(self, trained: stages.Trained, m0: Scores | None) -> Scores:
        module = self.kind.head(trained.net, self.data.scale)
        metrics, _ = self.scorer.score(predict(module, torch.from_numpy(self.ds.test.x)).numpy())
        metrics = self.scorer.with_retention(metrics, m0["metrics"] if m0 else metrics)
        shape = trained.net.shape
        return {"metrics": metrics, "seconds": trained.result.seconds, "cpu_seconds": trained.cpu_seconds,
                "params": nets.count_params(trained.net), "shape": f"{shape.layers}×{shape.width}"}

    def chain(self, shapes: tuple[tuple[int, int], ...], seed: int, m0: stages.Trained,
              stages_: list[tuple[float, float]]) -> list[stages.Trained]:
        """M1..Mn, each distilled from its predecessor with stage k's (α, T)."""
        out = [m0]
        for k, (alpha, temperature) in enumerate(stages_, start=1):
            out.append(self.train(shapes[k], k, seed, out[-1], Objective(self.kind, alpha, temperature),
                                  self.cfg.student))
        return out[1:]

    def teacher(self, seed: int) -> tuple[stages.Trained, Scores]:
        """M0 on labels, the way the job trains it with this seed; its outputs on the training rows are
        computed once for all its students (as the job does), and counted in M0's CPU time."""
        m0 = self.train(nets.SCHEDULES["combined"][0], 0, seed, None, Objective(self.kind), self.cfg.teacher)
        cpu = time.process_time()
        m0.soft_targets(self.data.x_train)
        m0.cpu_seconds += time.process_time() - cpu
        return m0, self.score(m0, None)

    def run_seed(self, seed: int, m0: stages.Trained, m0_scores: Scores, variants: bool,
                 shape_variants: bool) -> SeedResult:
        """The students of one seed; `variants` adds the fixed α/T comparisons to the main three, and
        `shape_variants` the width-only and depth-only chains."""
        combined = nets.SCHEDULES["combined"]
        steps = [(s.alpha, s.temperature) for s in schedule.stages(self.cfg.schedule, len(combined) - 1)]

        def tiers(models: list[stages.Trained], names: tuple[str, ...] = ("M1", "M2", "M3")) -> list[Any]:
            return [(n, self.score(f, m0_scores)) for n, f in zip(names, models, strict=True)]

        last, labels_only, budget = Objective(self.kind, *steps[-1]), Objective(self.kind), self.cfg.student
        out = {"M0": [("M0", m0_scores)], "chain": tiers(self.chain(combined, seed, m0, steps)),
               "one-shot": tiers([self.train(combined[-1], 3, seed, m0, last, budget)], ("M3",)),
               "direct": tiers([self.train(combined[-1], 3, seed, None, labels_only, budget)], ("M3",))}
        if shape_variants:
            for name in ("width", "depth"):
                out[f"chain, {name}-only"] = tiers(self.chain(nets.SCHEDULES[name], seed, m0, steps))
        if variants:  # the write-up's α/T curriculum, against the default's α held at 0.9
            cfg = config.curriculum(self.cfg).schedule
            writeup = [(s.alpha, s.temperature) for s in schedule.stages(cfg, len(combined) - 1)]
            out["chain, write-up schedule"] = tiers(self.chain(combined, seed, m0, writeup))
            last_writeup = Objective(self.kind, *writeup[-1])
            out["one-shot, write-up schedule"] = tiers([self.train(combined[-1], 3, seed, m0, last_writeup,
                                                                   budget)], ("M3",))
        for alpha, temperature in FIXED if variants else ():
            label = f"fixed α={alpha}" + (f" T={temperature:g}" if self.kind.uses_temperature else "")
            same = [(alpha, temperature)] * len(steps)
            out[f"chain, {label}"] = tiers(self.chain(combined, seed, m0, same))
            fixed = Objective(self.kind, alpha, temperature)
            out[f"one-shot, {label}"] = tiers([self.train(combined[-1], 3, seed, m0, fixed, budget)], ("M3",))
        return out


def measure(name: str, source: dataset.Source, cfg: TrainConfig, seeds: tuple[int, ...],
            variant_seeds: tuple[int, ...] = (), shape_seeds: tuple[int, ...] = ()) -> dict[str, Any]:
    """One M0 (the first seed's), then every seed's students: rows of (variant, tier) with per-seed
    values, mean and std; timing. One teacher for all seeds keeps the comparison paired and the budget
    on the students; M0's own seed-to-seed spread is not measured."""
    ds = dataset.build(source, cfg.target.build(), fractions=(cfg.data.train_fraction, cfg.data.val_fraction))
    bench = Bench(cfg, ds)
    m0, m0_scores = bench.teacher(seeds[0])
    per_seed = [bench.run_seed(seed, m0, m0_scores, seed in variant_seeds, seed in shape_seeds)
                for seed in seeds]
    rows = aggregate(per_seed, bench.reference)
    oracle = bench.scorer.oracle
    return {"name": name, "source": source.describe(), "target": ds.target.describe(),
            "metric": bench.kind.headline, "seeds": list(seeds),
            "variant_seeds": [s for s in seeds if s in variant_seeds],
            "shape_seeds": [s for s in seeds if s in shape_seeds],
            "train_rows": len(ds.train), "test_rows": len(ds.test),
            "teacher_epochs": cfg.teacher.max_epochs, "student_epochs": cfg.student.max_epochs,
            "oracle": bench.scorer.headline(oracle) if oracle else None, "rows": rows,
            "timing": timing(per_seed), "chain_beats_one_shot": _wins(rows, bench.kind.headline)}


def aggregate(per_seed: list[SeedResult], reference: int) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for result in per_seed:
        for variant, tiers in result.items():
            for tier, s in tiers:
                if variant == "M0" and (variant, tier) in rows:
                    continue  # one M0 serves every seed
                row = rows.setdefault((variant, tier), {
                    "variant": variant, "tier": tier, "shape": s["shape"], "params": s["params"],
                    "compression": reference / s["params"], "runs": {k: [] for k in METRICS}})
                values = {**s["metrics"].model_dump(), "seconds": s["seconds"],
                          "cpu_seconds": s["cpu_seconds"]}
                for k in METRICS:
                    row["runs"][k].append(_finite(values[k]))
    for row in rows.values():
        row["mean"] = {k: _mean(v) for k, v in row["runs"].items()}
        row["std"] = {k: _std(v) for k, v in row["runs"].items()}
    return list(rows.values())


def timing(per_seed: list[SeedResult]) -> dict[str, Any]:
    """Training time of the chain (M1+M2+M3) against one-shot per seed, with and without M0's, in CPU
    seconds of this process (wall time swings with whatever else runs on the machine; both are kept)."""
    def total(r: SeedResult, variant: str, key: str = "cpu_seconds") -> float:
        return sum(s[key] for _, s in r[variant])

    m0, chain, one_shot = ([total(r, v) for r in per_seed] for v in ("M0", "chain", "one-shot"))
    return {"m0_seconds": m0, "chain_seconds": chain, "one_shot_seconds": one_shot,
            "ratio": [c / o for c, o in zip(chain, one_shot, strict=True)],
            "ratio_with_m0": [(m + c) / (m + o) for m, c, o in zip(m0, chain, one_shot, strict=True)],
            "wall_ratio": [total(r, "chain", "seconds") / total(r, "one-shot", "seconds") for r in per_seed]}


def _wins(rows: list[dict[str, Any]], metric: str) -> dict[str, dict[str, int]]:
    """Seeds on which a chain's M3 scores above one-shot's with the same last-stage α and T (the headline
    metric): the schedule's chain against the default one-shot, each fixed chain against its one-shot."""
    out = {}
    for r in rows:
        if r["variant"].startswith("one-shot"):
            chain = row_of(rows, r["variant"].replace("one-shot", "chain"), "M3")["runs"][metric]
            wins = sum(c > o for c, o in zip(chain, r["runs"][metric], strict=True))
            out[r["variant"].replace("one-shot", "chain")] = {"wins": wins, "seeds": len(chain)}
    return out


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _mean(v: list[float | None]) -> float | None:
    xs = [x for x in v if x is not None]
    return statistics.fmean(xs) if xs else None


def _std(v: list[float | None]) -> float | None:
    xs = [x for x in v if x is not None]
    return statistics.stdev(xs) if len(xs) > 1 else None


def run(quick: bool, out: Path, plan_name: str = "full") -> dict[str, Any]:
    plan = QUICK if quick else PLANS[plan_name]
    started = time.perf_counter()
    base = config.load(quick=quick, overrides={"threads": plan.threads})

    def budget(teacher: float | None, student: float | None, **extra: Any) -> TrainConfig:
        epochs = {"teacher": {"max_epochs": teacher}, "student": {"max_epochs": student}} if teacher else {}
        return config.validate(config.merge(base.model_dump(mode="json"), {**epochs, **extra}))

    bars = {"data": {"bars": plan.bars}} if plan.bars else {}
    returns = budget(plan.teacher_epochs, plan.student_epochs, **bars)
    real = budget(plan.real_epochs, plan.real_epochs)
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        results = measure_all(plan, returns, real)
    finally:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "distill.png")
    full = quick or plan_name == "full"
    command = {} if full else {"command": f"python -m bench.distill --plan {plan_name}"}
    return {**command, "plan": asdict(plan), "sources": results, "plot": shown(out / "distill.png"),
            "skipped": skipped(plan),
            "seconds": time.perf_counter() - started}


def skipped(plan: Plan) -> list[str]:
    out = [] if plan.direction else ["the direction target: not in this plan (`--plan full` runs it)"]
    if not plan.real:
        out.append("real candles: not in this plan (`--plan full` runs them)")
    elif not _real_files():
        out.append(f"real candles: no CSV files under {OHLCV.resolve()}")
    return out


def _real_files() -> list[Path]:
    return sorted(OHLCV.glob("*.csv")) if OHLCV.is_dir() else []


def measure_all(plan: Plan, returns: TrainConfig, real: TrainConfig) -> list[dict[str, Any]]:
    direction_bars = plan.direction_bars or returns.data.bars
    direction = config.validate(config.merge(returns.model_dump(mode="json"), {
        "target": {"name": "direction", "horizon": 1}, "data": {"bars": direction_bars}}))
    seeds, variant_seeds = plan.seeds, plan.variant_seeds
    synthetic = sources.synthetic_source(returns.data.bars, returns.data.market_seed)
    results = [measure("synthetic market, return", synthetic, returns, seeds, variant_seeds,
                       plan.shape_seeds)]
    if not plan.direction:
        return results
    del synthetic  # the direction target's smaller market is built next; do not hold both
    smaller = sources.synthetic_source(direction_bars, returns.data.market_seed)
    results.append(measure("synthetic market, direction", smaller, direction, variant_seeds, variant_seeds))
    for path in _real_files() if plan.real else []:
        source = sources.csv_source(path)
        if plan.real_candles:
            source = replace(source, candles=source.candles[-plan.real_candles:])
        results.append(measure(path.name, source, real, plan.seeds))
    return results


if __name__ == "__main__":
    # `--plan core` runs the return target's comparison alone; every other argument is the shared one.
    argv = sys.argv[1:]
    plan_name = argv.pop(argv.index("--plan") + 1) if "--plan" in argv[:-1] else "full"
    argv = [a for a in argv if a != "--plan"]
    if plan_name not in PLANS:
        sys.exit(f"python -m bench.distill: --plan must be one of {', '.join(PLANS)}, not {plan_name!r}")
    cli("distill", partial(run, plan_name=plan_name), markdown, argv)
