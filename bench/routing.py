"""What routing buys: a held-out stream replayed through the regime router, against always-M0, always-M3
and an oracle router that knows the true regime, for quality and for compute.

    python -m bench.routing [--quick] [--models DIR] [--real-models DIR ...] [--out DIR]

The synthetic stream is the family's own test split, rebuilt from its manifest (source seed and bars,
split fractions; the data's sha256 must match), with its true regimes. Real candles (`../shared/data/
ohlcv/`, skipped when absent) need a family trained on them: one per file is trained here
(`tiered train --source csv:PATH`; --quick: the smallest file only, with --quick) unless
`--real-models` names stores; they have no true regime, so only the detector's regimes appear there.

The router is the app's own: `app.registry.load_family` builds the family (sessions, manifest thresholds),
`market.regime.detect` reads each row's signals and `app.router.route` picks the tier, exactly as
/predict does without an override or a budget. Compute is each tier's batch-1 onnxruntime µs per call,
measured here on the registry's sessions. Policies: the router with the family's map in force (learned on
validation by default), the other map (the write-up's fixed calm → M3 … crisis → M0, or the learned one),
the oracle router, always one tier. Two curves of quality against compute (routing.png): stress thresholds
swept, and every map the learned map's tolerance can produce (each learned on the validation split exactly
as `tiered train` learns it, then replayed on the test split). The product's goal: routed quality ≥ 98%
of always-M0 at ≤ 40% of its compute, while always-smallest stays below 95% (otherwise routing buys nothing
over the smallest tier).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.registry import load_family
from bench import pipeline, replay
from bench.common import ROOT, cli, table
from bench.distill_report import LABELS
from bench.family import Store, family_store, store_options
from market import dataset, sources, targets
from market.regime import DEFAULT_TIER_MAP, REGIMES, balanced_accuracy, confusion_matrix, detect
from training import tiermap
from training.evaluate import Scorer

OHLCV = ROOT / ".." / "shared" / "data" / "ohlcv"
GOAL_QUALITY, GOAL_COMPUTE = 0.98, 0.40  # of always-M0's
SMALLEST_BELOW = 0.95  # always-smallest must stay under this share of always-M0, or routing buys nothing
TOLERANCES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 0.99)
SCALES = (0.5, 1.0, 2.0)


def run(quick: bool, out: Path, models: Path | None = None, real_models: list[Path] | None = None,
        ohlcv: Path = OHLCV) -> dict[str, Any]:
    runs, shifts = (300, 13) if quick else (3000, 31)
    with ExitStack() as stack:
        synthetic = stack.enter_context(family_store(models, quick))
        reals, skipped = real_stores(stack, quick, real_models, ohlcv)
        streams = [replay_store(synthetic, ohlcv, runs, shifts)]
        streams += [replay_store(store, ohlcv, runs, shifts) for store in reals]
    result = {"streams": streams, "real_skipped": skipped,
              "goal": {"quality_of_m0": GOAL_QUALITY, "compute_of_m0": GOAL_COMPUTE}}
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / "routing.png")
    return result


def real_stores(stack: ExitStack, quick: bool, given: list[Path] | None,
                ohlcv: Path) -> tuple[list[Store], str]:
    """Stores of families trained on real candles (given, or one per CSV file), or why there are none."""
    if given is not None:
        return [Store.read(p) for p in given], ""
    files = sorted(ohlcv.glob("*.csv"), key=lambda p: p.stat().st_size) if ohlcv.is_dir() else []
    if not files:
        return [], f"no real candles: {ohlcv} holds no CSV file"
    files = files[:1] if quick else files
    return [stack.enter_context(family_store(None, quick, f"csv:{f}")) for f in files], ""


def rebuild(store: Store, ohlcv: Path) -> dataset.Dataset:
    """The data set the family was trained on, from its manifest; refused if the data differ."""
    m = store.manifest
    data = m.config["data"]
    assert isinstance(data, dict), f"manifest config.data is {data!r}"
    if m.source["kind"] == "synthetic":
        source = sources.synthetic_source(int(data["bars"]), int(data["market_seed"]))
    elif m.source["kind"] == "csv":
        source = sources.csv_source(ohlcv / str(m.source["file"]))
    else:
        raise ValueError(f"{m.family_id}: cannot rebuild a {m.source['kind']!r} source offline")
    if source.describe()["sha256"] != m.source["sha256"]:
        raise ValueError(f"{m.family_id}: the rebuilt data differ from the data it was trained on (sha256)")
    target = targets.get(m.target.name, m.target.horizon)
    fractions = (float(data["train_fraction"]), float(data["val_fraction"]))
    return dataset.build(source, target, fractions=fractions)


def replay_store(store: Store, ohlcv: Path, runs: int, shifts: int) -> dict[str, Any]:
    print(f"bench.routing: replaying {store.manifest.family_id}", file=sys.stderr)
    family = load_family(store.path, threads=1)
    ds = rebuild(store, ohlcv)
    test = ds.test
    latency = pipeline.tier_latency_us(family, test.x, runs)
    stream = replay.Stream(family, test.x, test.signals, replay.predict_all(family, test.x),
                           np.asarray([latency[t] for t in family.order]),
                           Scorer.for_split(ds, test))
    detected = detect(test.signals, family.thresholds)
    section = store.manifest.regime
    policies = {"routed": stream.tier_index(detected)}
    other = "learned" if section.tier_map_source == "fixed" else "fixed"
    maps = {"fixed": dict(DEFAULT_TIER_MAP)}
    if section.learned is not None:
        maps["learned"] = dict(section.learned.chosen)
    if other in maps:
        policies[f"routed, {other} map"] = stream.mapped(maps[other], detected)
    if test.true_regime is not None:
        policies["oracle router"] = stream.tier_index(test.true_regime)
    policies |= {f"always {t}": stream.always(t) for t in family.order}
    result = {"family": store.describe(), "rows": len(test), "truth": test.true_regime is not None,
              "latency_us": latency, "thresholds": family.thresholds.to_dict(),
              "tier_map": section.tier_map, "tier_map_source": section.tier_map_source,
              "metric": stream.scorer.kind.headline,
              "oracle": stream.scorer.headline(stream.scorer.oracle) if stream.scorer.oracle else None,
              "policies": {name: replay.evaluate(stream, chosen) for name, chosen in policies.items()},
              "sweep": replay.sweep(stream, shifts, SCALES),
              "tolerance_curve": tolerance_curve(stream, ds, detected)}
    if test.true_regime is not None:
        matrix = confusion_matrix(test.true_regime, detected)
        result["detector"] = {"balanced_accuracy": balanced_accuracy(matrix), "confusion": matrix.tolist()}
    result["goal"] = goal(result)
    return result


def tolerance_curve(stream: replay.Stream, ds: dataset.Dataset, detected: np.ndarray) -> list[dict[str, Any]]:
    """Every tier map the learned-map tolerance can produce: each learned on the validation split as
    `tiered train` learns it (training.tiermap), then replayed on the test split. Maps that repeat are
    listed once, at the smallest tolerance that gives them."""
    family, scorer = stream.family, stream.scorer
    validation = replay.predict_all(family, ds.val.x)
    val_regimes = detect(ds.val.signals, family.thresholds)
    by_tier = dict(zip(family.order, validation, strict=True))
    points, seen = [], set()
    for tolerance in TOLERANCES:
        chosen = tiermap.learn(scorer.kind, ds.target, by_tier, ds.val.y, val_regimes, family.order,
                               tolerance).chosen
        key = tuple(chosen[r] for r in REGIMES)
        if key in seen:
            continue
        seen.add(key)
        e = replay.evaluate(stream, stream.mapped(chosen, detected))
        points.append({"tolerance": tolerance, "tier_map": chosen, "quality": e["quality"],
                       "compute_us": e["compute_us"], "shares": e["shares"]})
    return points


def goal(r: dict[str, Any]) -> dict[str, Any]:
    """Where the default router lands against always-M0, and the best the sweep offers."""
    m0, routed = r["policies"]["always M0"], r["policies"]["routed"]
    rel = lambda p: (p["quality"] / m0["quality"] if m0["quality"] > 0 else None,  # noqa: E731
                     p["compute_us"] / m0["compute_us"])
    quality, compute = rel(routed)
    fits = [p for p in r["sweep"] if rel(p)[1] <= GOAL_COMPUTE]
    best = max(fits, key=lambda p: p["quality"]) if fits else None
    good = [p for p in r["sweep"] if (rel(p)[0] or 0.0) >= GOAL_QUALITY]
    cheapest = min(good, key=lambda p: p["compute_us"]) if good else None
    relative = lambda p: p and {**p, "quality_of_m0": rel(p)[0], "compute_of_m0": rel(p)[1]}  # noqa: E731
    smallest = r["policies"][f"always {list(r['latency_us'])[-1]}"]
    smallest_quality = rel(smallest)[0]
    maps = {name: {"quality_of_m0": rel(p)[0], "compute_of_m0": rel(p)[1],
                   "met": (rel(p)[0] or 0.0) >= GOAL_QUALITY and rel(p)[1] <= GOAL_COMPUTE}
            for name, p in r["policies"].items() if name.startswith("routed")}
    return {"quality_of_m0": quality, "compute_of_m0": compute,
            "met": quality is not None and quality >= GOAL_QUALITY and compute <= GOAL_COMPUTE,
            "maps": maps, "smallest_quality_of_m0": smallest_quality,
            "smallest_below": smallest_quality is not None and smallest_quality < SMALLEST_BELOW,
            "best_within_compute": relative(best), "cheapest_with_quality": relative(cheapest)}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = result["streams"]
    fig, axes = plt.subplots(1, len(streams), figsize=(6.5 * len(streams), 5), squeeze=False)
    for ax, s in zip(axes[0], streams, strict=True):
        m0 = s["policies"]["always M0"]
        for scale, colour in zip(SCALES, ("#9ecae1", "#4292c6", "#08519c"), strict=True):
            pts = sorted((p for p in s["sweep"] if p["scale"] == scale), key=lambda p: p["compute_us"])
            ax.plot([p["compute_us"] for p in pts], [p["quality"] for p in pts], marker=".", color=colour,
                    label=f"thresholds swept (spacing ×{scale:g})")
        curve = sorted(s["tolerance_curve"], key=lambda p: p["compute_us"])
        ax.plot([p["compute_us"] for p in curve], [p["quality"] for p in curve], marker="o", color="purple",
                label="learned maps, every tolerance")
        for p in curve:
            ax.annotate(f"{p['tolerance']:g}", (p["compute_us"], p["quality"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="purple")
        for name, p in s["policies"].items():
            if name.startswith("always "):
                ax.scatter([p["compute_us"]], [p["quality"]], marker="s", s=60, color="grey", zorder=3)
                ax.annotate(name, (p["compute_us"], p["quality"]), textcoords="offset points", xytext=(6, 4),
                            fontsize=8)
            else:
                marker, size, colour = ("*", 200, "red") if name == "routed" else ("D", 70, "orange")
                in_force = f"routed ({s['tier_map_source']} map, default thresholds)"
                ax.scatter([p["compute_us"]], [p["quality"]], marker=marker, s=size, color=colour, zorder=4,
                           label=in_force if name == "routed" else name)
        if m0["quality"] > 0:
            top = max(p["quality"] for p in [*s["sweep"], *s["policies"].values()])
            ax.fill_between([0, GOAL_COMPUTE * m0["compute_us"]], GOAL_QUALITY * m0["quality"],
                            max(top, GOAL_QUALITY * m0["quality"]) * 1.01, color="green", alpha=0.12,
                            label="goal: ≥98% of M0 at ≤40% of its compute")
        ax.set_xlabel("mean onnxruntime µs per prediction (batch-1)")
        ax.set_ylabel("R²" if s["policies"]["routed"]["r2"] is not None else "accuracy")
        src = s["family"]["source"]
        ax.set_title(f"{_name(src)}: {s['rows']:,} test rows")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    parts = []
    for s in result["streams"]:
        src = s["family"]["source"]
        title = (f"**{_name(src)}**, family "
                 f"`{s['family']['family_id']}`, {s['rows']:,} test rows"
                 + (f", oracle {LABELS.get(s['metric'], s['metric'])} {s['oracle']:.4f}"
                    if s["oracle"] is not None else ""))
        parts += [title, policy_table(s), regime_table(s), sweep_table(s), tolerance_table(s)]
    if result["real_skipped"]:
        parts.append(f"Real candles skipped: {result['real_skipped']}.")
    parts.append(reading(result))
    return "\n\n".join(parts)


def policy_table(s: dict[str, Any]) -> str:
    m0 = s["policies"]["always M0"]
    tiers = list(s["latency_us"])
    rows = [[name, p["r2"] if p["r2"] is not None else p["accuracy"], _pct(p["quality"], m0["quality"]),
             p["directional_accuracy"], p["compute_us"], _pct(p["compute_us"], m0["compute_us"]),
             " / ".join(f"{p['shares'][t]:.0%}" for t in tiers)] for name, p in s["policies"].items()]
    lat = ", ".join(f"{t} {us:.1f} µs" for t, us in s["latency_us"].items())
    metric = "R²" if m0["r2"] is not None else "accuracy"
    headers = ["policy", metric, "of M0", "dir. acc.", "µs/prediction", "of M0", f"share {'/'.join(tiers)}"]
    th = s["thresholds"]
    router = ", ".join(f"{r} → {t}" for r, t in s["tier_map"].items())
    return (table(headers, rows) + f"\n\nbatch-1 onnxruntime per call: {lat}. Router: {router}; stress "
            f"thresholds calm {th['calm']:.3f}, volatile {th['volatile']:.3f}, crisis {th['crisis']:.3f}, "
            f"vol_shift {th['vol_shift']:.3f} (the manifest's).")


def regime_table(s: dict[str, Any]) -> str:
    names = [r for r in REGIMES if r in s["policies"]["always M0"]["per_regime"]]
    rows = [[name, *(f"{p['per_regime'][r]['quality']:.4f} / {p['per_regime'][r]['directional_accuracy']:.3f}"
                     for r in names)] for name, p in s["policies"].items()]
    rows.append(["rows", *(s["policies"]["always M0"]["per_regime"][r]["rows"] for r in names)])
    kind = "true" if s["truth"] else "detected"
    extra = ""
    if "detector" in s:
        extra = f"\n\nDetector balanced accuracy on this split: {s['detector']['balanced_accuracy']:.3f}."
    return f"Per {kind} regime, quality / directional accuracy:\n\n" + table(["policy", *names], rows) + extra


def sweep_table(s: dict[str, Any]) -> str:
    g = s["goal"]
    rows = [["default thresholds", _ratio(g["quality_of_m0"]), _ratio(g["compute_of_m0"]),
             "met" if g["met"] else "NOT met"]]
    for label, p in (("best quality at ≤40% compute", g["best_within_compute"]),
                     ("cheapest at ≥98% quality", g["cheapest_with_quality"])):
        if p is None:
            rows.append([f"{label}: none in the sweep", "–", "–", ""])
            continue
        met = (p["quality_of_m0"] or 0) >= GOAL_QUALITY and p["compute_of_m0"] <= GOAL_COMPUTE
        rows.append([f"{label} (δ {p['shift']:+.2f}, ×{p['scale']:g})", _ratio(p["quality_of_m0"]),
                     _ratio(p["compute_of_m0"]), "met" if met else ""])
    return table(["router", "quality of M0", "compute of M0", "goal"], rows)


def tolerance_table(s: dict[str, Any]) -> str:
    """The learned maps every tolerance produces, on the test split."""
    m0 = s["policies"]["always M0"]
    rows = [[f"{p['tolerance']:g}", " / ".join(p["tier_map"][r] for r in REGIMES),
             _pct(p["quality"], m0["quality"]), _pct(p["compute_us"], m0["compute_us"])]
            for p in s["tolerance_curve"]]
    headers = ["tolerance", f"map {' / '.join(REGIMES)}", "quality of M0", "compute of M0"]
    return ("Learned maps (per regime the smallest tier within the tolerance of the best on validation), "
            "replayed on the test split:\n\n" + table(headers, rows))


def _pct(value: float, reference: float) -> str:
    return f"{value / reference:.1%}" if reference > 0 else "–"


def _name(source: dict[str, Any]) -> str:
    return f"{source['kind']} {source.get('symbol', '')} {source.get('interval', '')}".strip()


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def reading(result: dict[str, Any]) -> str:
    s = result["streams"][0]
    p, g = s["policies"], s["goal"]
    routed, m0, m3 = p["routed"], p["always M0"], p[f"always {list(s['latency_us'])[-1]}"]
    smallest = list(s["latency_us"])[-1]
    router = ", ".join(f"{r} → {t}" for r, t in s["tier_map"].items())
    text = [f"On the synthetic test split the router ({s['tier_map_source']} map: {router}) reaches R² "
            f"{routed['quality']:.4f}, {_ratio(g['quality_of_m0'])} of always-M0's {m0['quality']:.4f}, at "
            f"{g['compute_of_m0']:.0%} of M0's onnxruntime compute ({routed['compute_us']:.1f} against "
            f"{m0['compute_us']:.1f} µs per prediction), answering "
            f"{routed['shares'].get('M0', 0):.0%} of rows with M0."]
    text.append("The goal (≥98% of M0's quality at ≤40% of its compute) is "
                + ("met" if g["met"] else "NOT met") + " with the map in force; "
                + "; ".join(f"{name.removeprefix('routed, ')}: {_ratio(v['quality_of_m0'])} at "
                            f"{_ratio(v['compute_of_m0'])}, " + ("met" if v["met"] else "NOT met")
                            for name, v in g["maps"].items() if name != "routed") + ".")
    text.append(f"Always-{smallest} keeps {_ratio(g['smallest_quality_of_m0'])} of M0's quality at "
                f"{_pct(m3['compute_us'], m0['compute_us'])} of its compute: "
                + (f"below {SMALLEST_BELOW:.0%}, so the small tier alone is not enough and routing is what "
                   "buys the saving." if g["smallest_below"] else
                   f"not below {SMALLEST_BELOW:.0%}: on this family the smallest tier alone would do, and "
                   "routing buys little over it."))
    if "oracle router" in p:
        o = p["oracle router"]
        text.append(f"Knowing the true regime would give R² {o['quality']:.4f} at {o['compute_us']:.1f} µs, "
                    f"so detection errors cost {o['quality'] - routed['quality']:+.4f} R² "
                    f"(detector balanced accuracy {s['detector']['balanced_accuracy']:.2f}).")
    text.append("Compute here is onnxruntime alone; a whole request also pays for parsing, features and "
                "HTTP (bench.serve).")
    for real in result["streams"][1:]:
        rp, rm0 = real["policies"]["routed"], real["policies"]["always M0"]
        text.append(f"On {_name(real['family']['source'])} candles R² is {rm0['r2']:.4f} for always-M0 and "
                    f"{rp['r2']:.4f} routed (directional accuracy {rm0['directional_accuracy']:.3f} "
                    f"and {rp['directional_accuracy']:.3f}) at {real['goal']['compute_of_m0']:.0%} of M0's "
                    "compute" + ("; with no skill to retain there, the 98% goal has no meaning."
                                 if rm0["quality"] <= 0 else "."))
    return " ".join(text)


if __name__ == "__main__":
    extra, rest = store_options(sys.argv[1:], real=True)
    cli("routing", partial(run, **extra), markdown, rest)
