"""Serving speed against its floor: the real server (`tiered serve`, one worker, then two) on loopback under
a closed-loop load generator, next to the same prediction path timed in-process without HTTP.

    python -m bench.serve [--quick] [--models DIR] [--out DIR]

Rows (requests/s, p50, p99): POST /bench/bare (parses the /predict body, answers a constant: the floor of
this stack), /predict forced to each tier, /predict routed over a regime-mixed rotation of windows, and
/predict/batch at 1, 64 and 1,000 windows (1,000 is the most a call may carry: the app caps
`items` and TIERED_MAX_BATCH_ITEMS there, so the issue's 1,024 cannot be sent). Headlines: routed
/predict rps ÷ bare rps (target ≥ 0.8) and batch predictions/s ÷ the in-process path's predictions/s
for the same windows, features included (target ≥ 0.5).

Full: `wrk` when installed (else the Python client), 16 connections, 10 s per row after a 2 s warm-up,
batches of 64 and more on 4 connections; the default family is trained first (a few minutes) unless
`--models` names a store. Quick: the Python client, 2 s per row, one worker, fewer rows, a --quick family.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.registry import Family, load_family
from bench import bodies, loadgen, pipeline, server
from bench.common import cli, table
from bench.family import family_store, store_options
from market import features

MAX_BATCH = 1000  # app/schemas.py: BatchRequest.items has max_length 1000; Settings caps max_batch_items too
TARGET_PREDICT, TARGET_BATCH = 0.8, 0.5


@dataclass(frozen=True)
class Plan:
    workers: tuple[int, ...]
    seconds: float  # measured per row
    warmup: float  # unmeasured load before each row
    connections: int
    batch_connections: int  # for batches above 1: a few in flight keep every worker busy
    forced: tuple[str, ...] | None  # tiers forced with "tier"; None: every tier
    batch_sizes: tuple[int, ...]
    per_regime: int  # windows per true regime in the rotation
    ort_runs: int
    client: str  # auto (wrk when installed) | python


FULL = Plan((1, 2), 10.0, 2.0, 16, 4, None, (1, 64, MAX_BATCH), 64, 3000, "auto")
QUICK = Plan((1,), 2.0, 0.5, 16, 4, ("M0", "M3"), (1, 64), 16, 300, "python")


def run(quick: bool, out: Path, models: Path | None = None) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    client = "wrk" if plan.client == "auto" and loadgen.wrk_installed() else "python"
    windows = bodies.regime_mixed(plan.per_regime)
    load_before = os.getloadavg()
    with family_store(models, quick) as store:
        family = load_family(store.path, threads=1)  # as the app loads it (TIERED_ORT_THREADS default 1)
        offline = measure_offline(family, windows, plan)
        tiers = list(plan.forced or family.order)
        http: list[dict[str, Any]] = []
        mix: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
            for workers in plan.workers:
                log = Path(tmp) / f"server-{workers}.log"
                # A body of 1,000 windows is about 6 MB, over the 4 MiB default limit.
                settings = {"TIERED_MAX_BATCH_ITEMS": str(MAX_BATCH), "TIERED_MAX_BODY_BYTES": str(64 << 20)}
                with server.running(store.path, workers, log, settings) as url:
                    mix = mix or check_answers(url, windows, tiers, plan.batch_sizes)
                    http += measure_http(url, windows, plan, workers, client, tiers)
    result = {"family": store.describe(), "client": client, "plan": asdict(plan), "http": http,
              "served_mix": mix, **offline, "headline": headline(http, offline["pipeline"], plan),
              # Other work on the machine moves every figure; the 1-minute load average says how much.
              "load_average": {"before": load_before[0], "after": os.getloadavg()[0]}}
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / "serve.png")
    return result


def measure_offline(family: Family, windows: bodies.Windows, plan: Plan) -> dict[str, Any]:
    """Everything timed without HTTP, on the registry's sessions, before any server starts."""
    f = features.compute(windows.as_features(range(len(windows.ends)))).x
    latency = pipeline.tier_latency_us(family, f, plan.ort_runs)
    throughput = pipeline.tier_throughput(family, f, max(5, plan.ort_runs // 100))
    ort = [{"tier": t, "params": family.tiers[t].entry.params, "batch1_us": latency[t],
            "batch1024_per_s": throughput[t], "registry_startup_us": family.tiers[t].latency_us}
           for t in family.available]
    runs = max(5, plan.ort_runs // 100)
    return {"onnxruntime": ort, "features_us": pipeline.features_us(family, windows, plan.ort_runs),
            "parse_us": pipeline.parse_us(windows, max(plan.batch_sizes), plan.ort_runs),
            "pipeline": {str(b): pipeline.pipeline_throughput(family, windows, b, runs if b > 1 else
                                                             plan.ort_runs) for b in plan.batch_sizes}}


def check_answers(url: str, windows: bodies.Windows, tiers: list[str],
                  sizes: tuple[int, ...]) -> dict[str, Any]:
    """Every body once, before any load: each must answer 200; the routed ones give the served mix."""
    counts: dict[str, dict[str, int]] = {"tier": {}, "regime": {}}
    with httpx.Client(base_url=url, timeout=60.0, headers={"Content-Type": "application/json"}) as c:
        ready = c.get("/readyz").json()
        if ready.get("status") != "ready":
            raise server.ServerFailed(f"the family is not fully loaded: {ready}")
        for k in range(len(windows.ends)):
            answer = _ok(c.post("/predict", content=windows.body(k)))
            for key, value in (("tier", answer["tier"]), ("regime", answer["regime"]["name"])):
                counts[key][value] = counts[key].get(value, 0) + 1
        for tier in tiers:
            if (answered := _ok(c.post("/predict", content=windows.body(0, tier=tier)))["tier"]) != tier:
                raise server.ServerFailed(f"/predict forced to {tier} was answered by {answered}")
        for size in sizes:
            if len(_ok(c.post("/predict/batch", content=windows.batch(0, size)))["results"]) != size:
                raise server.ServerFailed(f"/predict/batch of {size} did not answer {size} results")
    n = len(windows.ends)
    return {name: {k: v / n for k, v in sorted(c.items())} for name, c in counts.items()}


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise server.ServerFailed(f"{response.request.url.path} answered {response.status_code}: "
                                  f"{response.text[:300]}")
    answer: dict[str, Any] = orjson.loads(response.content)
    return answer


def measure_http(url: str, windows: bodies.Windows, plan: Plan, workers: int, client: str,
                 tiers: list[str]) -> list[dict[str, Any]]:
    n = len(windows.ends)
    routed = [windows.body(k) for k in range(n)]
    rows: list[tuple[str, str, list[bytes], int, int]] = [
        ("bare", "/bench/bare", routed, plan.connections, 1),
        ("routed", "/predict", routed, plan.connections, 1),
        *((f"tier {t}", "/predict", [windows.body(k, tier=t) for k in range(n)], plan.connections, 1)
          for t in tiers),
    ]
    for size in plan.batch_sizes:
        count = max(2, min(n, 2048 // size))  # bodies of up to 1,000 windows: a few are enough
        batch = [windows.batch(j * size, size) for j in range(count)]
        rows.append((f"batch {size}", "/predict/batch", batch,
                     plan.connections if size == 1 else plan.batch_connections, size))
    measured = []
    for name, path, payloads, connections, size in rows:
        print(f"bench.serve: {workers} worker(s), {name}", file=sys.stderr)
        if plan.warmup:
            loadgen.measure(url, loadgen.Load(path, payloads, connections, plan.warmup), client)
        m = loadgen.measure(url, loadgen.Load(path, payloads, connections, plan.seconds), client)
        measured.append({"workers": workers, "row": name, "path": path, "connections": connections,
                         "batch": size, "predictions_per_s": m.rps * size, **m.to_dict()})
    return measured


def headline(http: list[dict[str, Any]], raw: dict[str, float], plan: Plan) -> list[dict[str, Any]]:
    big = max(plan.batch_sizes)
    out = []
    for workers in plan.workers:
        row = {r["row"]: r for r in http if r["workers"] == workers}
        served = row[f"batch {big}"]["predictions_per_s"]
        out.append({"workers": workers, "predict_over_bare": row["routed"]["rps"] / row["bare"]["rps"],
                    "batch": big, "batch_over_pipeline": served / raw[str(big)]})
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    workers = sorted({r["workers"] for r in result["http"]})
    names = [r["row"] for r in result["http"] if r["workers"] == workers[0] and r["batch"] == 1]
    width = 0.8 / len(workers)
    for j, w in enumerate(workers):
        rps = {r["row"]: r["rps"] for r in result["http"] if r["workers"] == w}
        left.bar([i + j * width for i in range(len(names))], [rps[n] for n in names], width,
                 label=f"{w} worker{'s' if w > 1 else ''}")
    left.set_xticks([i + width * (len(workers) - 1) / 2 for i in range(len(names))], names, rotation=30)
    left.set_ylabel("requests/s")
    left.set_title(f"one window per request ({result['client']}, {result['plan']['connections']} conns)")
    left.legend()
    sizes = sorted({r["batch"] for r in result["http"]})
    for w in workers:
        served = {r["batch"]: r["predictions_per_s"] for r in result["http"]
                  if r["workers"] == w and r["path"] == "/predict/batch"}
        right.plot(sizes, [served[s] for s in sizes], marker="o", label=f"/predict/batch, {w} worker(s)")
    right.plot(sizes, [result["pipeline"][str(s)] for s in sizes], marker="s", linestyle="--",
               label="in-process path (features + regime + onnxruntime)")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("windows per call")
    right.set_ylabel("predictions/s")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    http, plan = result["http"], result["plan"]
    bare = {r["workers"]: r["rps"] for r in http if r["row"] == "bare"}
    rows = [[r["workers"], f"`{r['path']}` {r['row']}", r["connections"], r["rps"], r["predictions_per_s"],
             r["p50_ms"], r["p99_ms"], r["rps"] / bare[r["workers"]] if r["batch"] == 1 else None,
             r["errors"]] for r in http]
    ort = [[o["tier"], o["params"], o["batch1_us"], o["batch1024_per_s"], o["registry_startup_us"]]
           for o in result["onnxruntime"]]
    fx, px = result["features_us"], result["parse_us"]
    pipe = {int(b): v for b, v in result["pipeline"].items()}
    served1 = {r["batch"]: r["predictions_per_s"] for r in http
               if r["workers"] == 1 and r["path"] == "/predict/batch"}
    batch_rows = [[b, pipe[b], served1.get(b), served1[b] / pipe[b] if b in served1 else None]
                  for b in sorted(pipe)]
    heads = [[h["workers"], h["predict_over_bare"], _met(h["predict_over_bare"], TARGET_PREDICT),
              h["batch"], h["batch_over_pipeline"], _met(h["batch_over_pipeline"], TARGET_BATCH)]
             for h in result["headline"]]
    mix = ", ".join(f"{k} {v:.0%}" for k, v in result["served_mix"]["tier"].items())
    return "\n\n".join([
        f"Load: {result['client']}, {plan['seconds']:.0f} s per row after {plan['warmup']:.1g} s of warm-up, "
        f"loopback; family `{result['family']['family_id']}`. Routed rotation: {mix} of requests answered "
        f"by each tier. 1-minute load average {result['load_average']['before']:.1f} before, "
        f"{result['load_average']['after']:.1f} after.",
        table(["workers", "endpoint", "conns", "requests/s", "predictions/s", "p50 ms", "p99 ms",
               "÷ bare", "errors"], rows),
        table(["workers", "/predict ÷ bare", f"≥ {TARGET_PREDICT}", "batch", "batch ÷ in-process",
               f"≥ {TARGET_BATCH}"], heads),
        "onnxruntime alone (the app's session options, 1 thread):\n\n"
        + table(["tier", "params", "batch-1 µs/call", "batch-1024 predictions/s", "registry's startup µs"],
                ort),
        f"Per window, in-process: parsing and validating the body {px['predict']:.0f} µs alone, "
        f"{px['batch']:.0f} µs inside a batch of {px['batch_size']:.0f}; then window_of "
        f"{fx['window_of']:.1f} µs + features {fx['compute']:.1f} µs + regime {fx['detect']:.1f} µs = "
        f"{fx['total']:.1f} µs before onnxruntime.\n\n"
        + table(["windows per call", "in-process predictions/s", "/predict/batch (1 worker)", "ratio"],
                batch_rows),
        reading(result),
    ])


def _met(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def reading(result: dict[str, Any]) -> str:
    h1 = result["headline"][0]
    http = {(r["workers"], r["row"]): r for r in result["http"]}
    bare, routed = http[(1, "bare")], http[(1, "routed")]
    ort = {o["tier"]: o["batch1_us"] for o in result["onnxruntime"]}
    model_us = sum(share * ort[t] for t, share in result["served_mix"]["tier"].items())
    extra_us = 1e6 / routed["rps"] - 1e6 / bare["rps"]
    px, fx = result["parse_us"], result["features_us"]
    served_us = 1e6 / http[(1, f"batch {h1['batch']}")]["predictions_per_s"]
    pipe_us = 1e6 / result["pipeline"][str(h1["batch"])]
    parts = [
        f"With one worker the bare endpoint answers {bare['rps']:.0f} requests/s and routed /predict "
        f"{routed['rps']:.0f} (p50 {routed['p50_ms']:.2f} ms, p99 {routed['p99_ms']:.2f} ms at "
        f"{routed['connections']} connections): /predict ÷ bare = {h1['predict_over_bare']:.2f}, target 0.8 "
        + ("met." if h1["predict_over_bare"] >= TARGET_PREDICT else "NOT met."),
        f"Per request the bare endpoint costs {1e6 / bare['rps']:.0f} µs of wall time per answer (parsing "
        f"the body alone takes {px['predict']:.0f} µs in-process) and /predict {extra_us:.0f} µs more, "
        f"of which features + regime take {fx['total']:.0f} µs and onnxruntime {model_us:.0f} µs for this "
        "mix of tiers when done one window at a time (less when the service coalesces requests); the rest "
        "is the service's Python around the models (candle objects to arrays, building, validating and "
        "serialising the answer, counters).",
        f"At {h1['batch']} windows per call /predict/batch reaches {h1['batch_over_pipeline']:.2f} of the "
        f"in-process path ({result['pipeline'][str(h1['batch'])]:.0f} predictions/s), target 0.5 "
        + ("met." if h1["batch_over_pipeline"] >= TARGET_BATCH else
           f"NOT met. Of the {served_us:.0f} µs the server spends per window, parsing and validating it "
           f"takes {px['batch']:.0f} µs (in-process) and features, regime and onnxruntime {pipe_us:.0f} µs; "
           f"the other {served_us - px['batch'] - pipe_us:.0f} µs go to turning the parsed candles into "
           "arrays, building and serialising the answers, and HTTP: the service's Python around the models, "
           "not the models, bounds batch throughput."),
    ]
    if len(result["headline"]) > 1:
        h2 = result["headline"][1]
        two = http[(2, "routed")]
        parts.append(f"Two workers serve routed /predict at {two['rps']:.0f} requests/s "
                     f"({two['rps'] / routed['rps']:.2f}× one worker, on 2 cores shared with the load "
                     f"generator), /predict ÷ bare {h2['predict_over_bare']:.2f}.")
    errors = sum(r["errors"] for r in result["http"])
    parts.append("No request failed." if errors == 0 else f"{errors} requests FAILED (the errors column).")
    return " ".join(parts)


if __name__ == "__main__":
    extra, rest = store_options(sys.argv[1:])
    cli("serve", partial(run, **extra), markdown, rest)
