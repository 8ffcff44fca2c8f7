"""Distillation quality across seeds: the progressive chain against one-shot and direct training of M3's
shape, the width-only and depth-only schedules against the combined one, the α/T schedule against fixed
values, and what the chain costs in training time.

    python -m bench.distill [--quick]

Built from the training package's own pieces (`nets.MLP`, `distill.fit`, `schedule.stages`,
`evaluate.Scorer`), seeded the way `training.job` seeds a stage, but without the ONNX export and the
store: the comparison needs scores, not families, and `Job` trains a fixed set of models with no hook for
the extra variants. Scores are computed in PyTorch on the test split (the export's parity check bounds the
difference to ONNX at 1e-5). One M0 per data set teaches every seed's students, so comparisons are paired;
seeds vary the students' initial weights and data order; the market is fixed (the config's seed).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import ROOT, cli, table
from market import dataset, sources
from training import config, evaluate, nets, schedule
from training.config import FitConfig, TrainConfig
from training.distill import FitSettings, Objective, Task, Teacher, fit, predict
from training.job import tensors

OHLCV = ROOT / ".." / "shared" / "data" / "ohlcv"
FIXED = ((0.5, 2.0), (0.9, 4.0))  # (α, T) held at every stage, against the schedule
# The research write-up: M3 keeps 90-95% of M0 through the chain, 75-85% one-shot; the chain costs 1.5-2.5×.
CLAIM_CHAIN, CLAIM_ONE_SHOT, CLAIM_OVERHEAD = (0.90, 0.95), (0.75, 0.85), (1.5, 2.5)
METRICS = ("r2", "accuracy", "directional_accuracy", "oracle_share", "retention", "seconds", "cpu_seconds")
Scores = dict[str, Any]
SeedResult = dict[str, list[tuple[str, Scores]]]  # variant → [(tier, scores)]


@dataclass(frozen=True)
class Plan:
    """How much to train. Full mode cuts the default config's 1M bars to 300K to fit ~20 minutes of one
    core, and gives each student ~800 steps (the default run gives ~1,400: small students are still
    improving at that point, so every variant gets the same budget). The schedule variants and
    classification (the only task where T acts) run on fewer seeds than the main comparison."""

    seeds: tuple[int, ...]  # chain, one-shot and direct (synthetic regression and real candles)
    variant_seeds: tuple[int, ...]  # width-/depth-only and fixed α/T; everything in classification
    bars: int  # synthetic bars; 70% of the windows become training rows
    teacher_epochs: float  # synthetic data
    student_epochs: float
    real_epochs: float | None  # M0 and students on real candles (a few thousand rows; None: the config's)
    real_candles: int | None  # cap on candles per real file (None: the whole file)
    # One torch thread: with other jobs on the 2 cores, two threads spin-wait on each other and a step
    # got up to 8x slower in wall time (measured); one thread keeps CPU seconds comparable between runs.
    threads: int = 1


FULL = Plan(seeds=(0, 1, 2, 3, 4), variant_seeds=(0, 1, 2), bars=300_000, teacher_epochs=6,
            student_epochs=8, real_epochs=30, real_candles=None)
QUICK = Plan(seeds=(0, 1), variant_seeds=(0,), bars=8_000, teacher_epochs=1, student_epochs=1,
             real_epochs=None, real_candles=3_000)


@dataclass
class Fitted:
    net: nets.MLP
    seconds: float  # wall
    cpu_seconds: float  # this process's CPU time: steady when other jobs share the cores
    outputs: torch.Tensor | None = None  # on the training rows, when it teaches several students


class Bench:
    """One data set and task: trains and scores the models of the comparison."""

    def __init__(self, cfg: TrainConfig, ds: dataset.Dataset, task: Task) -> None:
        self.cfg, self.ds, self.task = cfg, ds, task
        self.data = tensors(ds, task)
        self.scorer = evaluate.Scorer.for_split(ds, ds.test, task)
        self.x_mean = ds.train.x.mean(axis=0, dtype=np.float64)
        self.x_std = ds.train.x.std(axis=0, dtype=np.float64)
        self.reference = nets.count_params(self._net(nets.SCHEDULES["combined"][0]))

    def _net(self, shape: tuple[int, int]) -> nets.MLP:
        out = 3 if self.task == "classification" else 1
        return nets.MLP(self.x_mean, self.x_std, nets.Shape(*shape), out, self.cfg.family.input_skip,
                        self.cfg.family.activation)

    def train(self, shape: tuple[int, int], index: int, seed: int, teacher: Fitted | None,
              objective: Objective, budget: FitConfig) -> Fitted:
        seed = seed * 1000 + index  # as training.job seeds the stage at position `index`
        torch.manual_seed(seed)
        net = self._net(shape)
        teachers: list[Teacher] = [] if teacher is None else [
            teacher.net if teacher.outputs is None else teacher.outputs]
        d, cpu = self.data, time.process_time()
        result = fit(net, (d.x_train, d.y_train), (d.x_val, d.y_val), objective,
                     FitSettings(**budget.model_dump(), seed=seed), teachers=teachers)
        return Fitted(net, result.seconds, time.process_time() - cpu)

    def score(self, fitted: Fitted, m0: Scores | None) -> Scores:
        module = nets.Deployed(fitted.net, self.task, self.data.y_mean, self.data.y_std)
        metrics, _ = self.scorer.score(predict(module, torch.from_numpy(self.ds.test.x)).numpy())
        metrics = evaluate.with_retention(metrics, m0["metrics"] if m0 else metrics)
        shape = fitted.net.shape
        return {"metrics": metrics, "seconds": fitted.seconds, "cpu_seconds": fitted.cpu_seconds,
                "params": nets.count_params(fitted.net),
                "shape": f"{shape.layers}×{shape.width}"}

    def chain(self, shapes: tuple[tuple[int, int], ...], seed: int, m0: Fitted,
              stages: list[tuple[float, float]]) -> list[Fitted]:
        """M1..Mn, each distilled from its predecessor with stage k's (α, T)."""
        out = [m0]
        for k, (alpha, temperature) in enumerate(stages, start=1):
            out.append(self.train(shapes[k], k, seed, out[-1], Objective(self.task, alpha, temperature),
                                  self.cfg.student))
        return out[1:]

    def teacher(self, seed: int) -> tuple[Fitted, Scores]:
        """M0 on labels, the way training.job trains it with this seed; its outputs on the training rows
        are computed once for all its students (as the job does)."""
        m0 = self.train(nets.SCHEDULES["combined"][0], 0, seed, None, Objective(self.task), self.cfg.teacher)
        cpu = time.process_time()
        m0.outputs = predict(m0.net, self.data.x_train)
        m0.cpu_seconds += time.process_time() - cpu
        return m0, self.score(m0, None)

    def run_seed(self, seed: int, m0: Fitted, m0_scores: Scores, variants: bool) -> SeedResult:
        """The students of one seed; `variants` adds the schedule comparisons to the main three."""
        combined = nets.SCHEDULES["combined"]
        stages = [(s.alpha, s.temperature) for s in schedule.stages(self.cfg.schedule, len(combined) - 1)]

        def tiers(models: list[Fitted], names: tuple[str, ...] = ("M1", "M2", "M3")) -> list[Any]:
            return [(n, self.score(f, m0_scores)) for n, f in zip(names, models, strict=True)]

        last, labels_only, budget = Objective(self.task, *stages[-1]), Objective(self.task), self.cfg.student
        out = {"M0": [("M0", m0_scores)], "chain": tiers(self.chain(combined, seed, m0, stages)),
               "one-shot": tiers([self.train(combined[-1], 3, seed, m0, last, budget)], ("M3",)),
               "direct": tiers([self.train(combined[-1], 3, seed, None, labels_only, budget)], ("M3",))}
        if variants and self.task == "regression":
            for name in ("width", "depth"):
                out[f"chain, {name}-only"] = tiers(self.chain(nets.SCHEDULES[name], seed, m0, stages))
        for alpha, temperature in FIXED if variants else ():
            label = f"fixed α={alpha}" + (f" T={temperature:g}" if self.task == "classification" else "")
            same = [(alpha, temperature)] * len(stages)
            out[f"chain, {label}"] = tiers(self.chain(combined, seed, m0, same))
            fixed = Objective(self.task, alpha, temperature)
            out[f"one-shot, {label}"] = tiers([self.train(combined[-1], 3, seed, m0, fixed, budget)], ("M3",))
        return out


def measure(name: str, source: dataset.Source, cfg: TrainConfig, seeds: tuple[int, ...],
            variant_seeds: tuple[int, ...] = ()) -> dict[str, Any]:
    """One M0 (the first seed's), then every seed's students: rows of (variant, tier) with per-seed
    values, mean and std; timing. One teacher for all seeds keeps the comparison paired and the budget
    on the students; M0's own seed-to-seed spread is not measured."""
    ds = dataset.build(source, fractions=(cfg.data.train_fraction, cfg.data.val_fraction))
    bench = Bench(cfg, ds, cfg.task)
    m0, m0_scores = bench.teacher(seeds[0])
    per_seed = [bench.run_seed(seed, m0, m0_scores, seed in variant_seeds) for seed in seeds]
    rows = aggregate(per_seed, bench.reference)
    return {"name": name, "source": source.describe(), "task": cfg.task, "seeds": list(seeds),
            "variant_seeds": [s for s in seeds if s in variant_seeds],
            "train_rows": len(ds.train), "test_rows": len(ds.test),
            "teacher_epochs": cfg.teacher.max_epochs, "student_epochs": cfg.student.max_epochs,
            "oracle_r2": bench.scorer.oracle_r2, "rows": rows, "timing": timing(per_seed),
            "chain_beats_one_shot": _wins(rows)}


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


def _wins(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Seeds on which a chain's M3 scores above one-shot's with the same last-stage α and T (R², or
    accuracy): the schedule's chain against the default one-shot, each fixed chain against its one-shot."""
    key = "r2" if rows[0]["runs"]["r2"][0] is not None else "accuracy"
    out = {}
    for r in rows:
        if r["variant"].startswith("one-shot"):
            chain = _row(rows, r["variant"].replace("one-shot", "chain"), "M3")["runs"][key]
            wins = sum(c > o for c, o in zip(chain, r["runs"][key], strict=True))
            out[r["variant"].replace("one-shot", "chain")] = {"wins": wins, "seeds": len(chain)}
    return out


def _row(rows: list[dict[str, Any]], variant: str, tier: str) -> dict[str, Any]:
    return next(r for r in rows if r["variant"] == variant and r["tier"] == tier)


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _mean(v: list[float | None]) -> float | None:
    xs = [x for x in v if x is not None]
    return statistics.fmean(xs) if xs else None


def _std(v: list[float | None]) -> float | None:
    xs = [x for x in v if x is not None]
    return statistics.stdev(xs) if len(xs) > 1 else None


def run(quick: bool, out: Path) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    started = time.perf_counter()
    base = config.load(quick=quick, overrides={"threads": plan.threads})

    def budget(teacher: float | None, student: float | None, **extra: Any) -> TrainConfig:
        epochs = {"teacher": {"max_epochs": teacher}, "student": {"max_epochs": student}} if teacher else {}
        return config.validate(config.merge(base.model_dump(mode="json"), {**epochs, **extra}))

    regression = budget(plan.teacher_epochs, plan.student_epochs, data={"bars": plan.bars})
    real = budget(plan.real_epochs, plan.real_epochs)
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    try:
        results = measure_all(plan, regression, real)
    finally:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / "distill.png")
    return {"plan": asdict(plan), "sources": results, "plot": _shown(out / "distill.png"),
            "skipped": [] if _real_files() else [f"real candles: no CSV files under {OHLCV.resolve()}"],
            "seconds": time.perf_counter() - started}


def _real_files() -> list[Path]:
    return sorted(OHLCV.glob("*.csv")) if OHLCV.is_dir() else []


def measure_all(plan: Plan, regression: TrainConfig, real: TrainConfig) -> list[dict[str, Any]]:
    classification = regression.model_copy(update={"task": "classification"})
    synthetic = sources.synthetic_source(plan.bars, regression.data.market_seed)
    seeds, variant_seeds = plan.seeds, plan.variant_seeds
    results = [measure("synthetic market, regression", synthetic, regression, seeds, variant_seeds),
               measure("synthetic market, classification", synthetic, classification, variant_seeds,
                       variant_seeds)]
    for path in _real_files():
        source = sources.csv_source(path)
        if plan.real_candles:
            source = replace(source, candles=source.candles[-plan.real_candles:])
        results.append(measure(path.name, source, real, plan.seeds))
    return results


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Retention against compression, one panel per data set, one line per variant (mean ± std). Where M0
    has no skill (R² ≤ 0) retention means nothing, and the panel shows directional accuracy instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        m0 = _row(res["rows"], "M0", "M0")
        key = "retention" if m0["mean"]["retention"] is not None else "directional_accuracy"
        for variant in dict.fromkeys(r["variant"] for r in res["rows"] if r["variant"] != "M0"):
            rows = [r for r in res["rows"] if r["variant"] == variant]
            if variant.startswith("chain"):
                rows = [m0, *rows]
            x, y, err = zip(*sorted((r["compression"], r["mean"][key], r["std"][key] or 0.0) for r in rows),
                            strict=True)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=variant)
        ax.set_xscale("log")
        ylabel = "retention (metric / M0's)" if key == "retention" else "directional accuracy (M0 R² ≤ 0)"
        ax.set(xlabel="compression (M0 params / params)", ylabel=ylabel, title=res["name"][:40])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    parts = []
    for res in result["sources"]:
        metric = "r2" if res["task"] == "regression" else "accuracy"
        parts += [f"### {res['name']}", "",
                  f"{res['train_rows']:,} training rows, {res['test_rows']:,} test rows; one M0, students on "
                  f"seeds {', '.join(map(str, res['seeds']))}"
                  + (f" (other variants on {', '.join(map(str, res['variant_seeds']))})"
                     if res["variant_seeds"] and res["variant_seeds"] != res["seeds"] else "")
                  + f"; {res['teacher_epochs']:g} epochs for M0, "
                  f"{res['student_epochs']:g} for each student, early stopping as configured"
                  + (f"; oracle R² {res['oracle_r2']:.4f}" if res["oracle_r2"] else "") + ".", ""]
        head = ["variant", "tier", "shape", "params", "compr.", "R²" if metric == "r2" else "accuracy",
                "dir. acc.", "oracle share", "retention", "CPU s"]
        rows = [[r["variant"], r["tier"], r["shape"], f"{r['params']:,}", f"{r['compression']:.1f}×",
                 _pm(r, metric), _pm(r, "directional_accuracy"), _pm(r, "oracle_share", pct=True),
                 _pm(r, "retention", pct=True), _pm(r, "cpu_seconds", digits=1)] for r in res["rows"]]
        t, wins = res["timing"], res["chain_beats_one_shot"]["chain"]
        parts += [table(head, rows), "", table(
            ["M0 CPU s", "chain (M1+M2+M3) CPU s", "one-shot CPU s", "chain ÷ one-shot", "incl. M0",
             "same, wall time", "chain M3 beats one-shot"],
            [[_ms(t["m0_seconds"], 1), _ms(t["chain_seconds"], 1), _ms(t["one_shot_seconds"], 1),
              _ms(t["ratio"], 2) + "×", _ms(t["ratio_with_m0"], 2) + "×", _ms(t["wall_ratio"], 2) + "×",
              f"{wins['wins']} of {wins['seeds']} seeds"]]), ""]
    parts += [*(f"Skipped: {s}." for s in result["skipped"]),
              f"Plot (retention against compression, every variant): `{result['plot']}`.", "",
              reading(result)]
    return "\n".join(parts)


def _shown(path: Path) -> str:
    return str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)


def _pm(row: dict[str, Any], key: str, pct: bool = False, digits: int = 4) -> str:
    mean, std = row["mean"][key], row["std"][key]
    if mean is None:
        return "n/a"
    if pct:
        return f"{mean:.1%}" + (f" ± {std:.1%}" if std is not None else "")
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _ms(values: list[float], digits: int) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def reading(result: dict[str, Any]) -> str:
    """The plain reading: what the numbers say against the write-up's claims, including what is not met."""
    said = [_reading(res) for res in result["sources"]] + [f"Skipped {s}." for s in result["skipped"]]
    return "**Reading.** " + " ".join(said)


def _reading(res: dict[str, Any]) -> str:
    rows, metric = res["rows"], "r2" if res["task"] == "regression" else "accuracy"
    m0, chain, one_shot, direct = (_row(rows, v, t)["mean"] for v, t in
                                   (("M0", "M0"), ("chain", "M3"), ("one-shot", "M3"), ("direct", "M3")))
    if m0[metric] is None or m0[metric] <= 0:
        acc = [f"{m['directional_accuracy']:.3f}" for m in (m0, chain, one_shot, direct)]
        return (f"On {res['name']} M0 has no skill (R² {m0[metric]:.4f}), so retention is undefined; "
                f"directional accuracy is {acc[0]} for M0 and {', '.join(acc[1:])} for the chain's M3, "
                "one-shot and direct: there is no signal here worth distilling.")
    wins, timing = res["chain_beats_one_shot"], res["timing"]
    ratio, with_m0 = statistics.fmean(timing["ratio"]), statistics.fmean(timing["ratio_with_m0"])
    name = "R²" if metric == "r2" else "accuracy"
    oracle = f" (M0 at {m0['oracle_share']:.0%} of the oracle R²)" if m0["oracle_share"] else ""
    met = "met" if chain["retention"] >= CLAIM_CHAIN[0] else "NOT met"
    gap = chain["retention"] - one_shot["retention"]
    gap_claim = ("reproduced" if one_shot["retention"] <= CLAIM_ONE_SHOT[1] and gap >= 0.05 else
                 f"NOT reproduced (the chain is {gap:+.1%} against one-shot)")
    m3 = [r for r in rows if r["tier"] == "M3" and r["mean"]["retention"] is not None]
    best = max(m3, key=lambda r: r["mean"]["retention"])
    others = ", ".join(f"{r['variant']} {r['mean']['retention']:.1%}" for r in rows if r["tier"] == "M3"
                       and r["variant"] not in ("chain", "one-shot", "direct") and r["mean"]["retention"])
    return (f"On {res['name']}{oracle} the chain's M3 keeps {chain['retention']:.1%} of M0's {name}, "
            f"one-shot {one_shot['retention']:.1%} and direct {direct['retention']:.1%}; the chain beats "
            f"one-shot on {wins['chain']['wins']} of {wins['chain']['seeds']} seeds. The write-up's 90-95% "
            f"for the chain is {met}; its 75-85% for one-shot, i.e. a clear gain from going in steps, is "
            f"{gap_claim}. " + (f"Other M3s: {others}; " if others else "")
            + f"the best M3 here is {best['variant']} ({best['mean']['retention']:.1%}). "
            + f"Its three students cost {ratio:.2f}× one-shot's training CPU time ({_inside(ratio)} the "
            f"write-up's 1.5-2.5× overhead), {with_m0:.2f}× counting M0's training in both "
            f"({_inside(with_m0)}).")


def _inside(ratio: float) -> str:
    return "inside" if CLAIM_OVERHEAD[0] <= ratio <= CLAIM_OVERHEAD[1] else "NOT inside"


if __name__ == "__main__":
    cli("distill", run, markdown)
