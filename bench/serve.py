"""Serving speed against its floor: the real server (`tiered serve`, one worker, then two) on loopback under
a closed-loop load generator, next to the same prediction path timed in-process without HTTP.

    python -m bench.serve [--quick] [--models DIR] [--out DIR]

Rows (requests/s, p50, p99), all against one server per worker count, its access log off for every row:
POST /bench/bare (FastAPI parsing the window as pydantic candle objects, answering a constant: the
floor of a textbook endpoint), /predict routed over a regime-mixed rotation of windows with the body in
each form (candle objects, columns, Bybit's kline list), /predict forced to each tier (columns), the bare
endpoint and /predict at one connection (latency without queueing), /predict/batch at 1, 64 and
1,000 columnar windows (1,000 is the most TIERED_MAX_BATCH_ITEMS allows), the Open Inference
Protocol on tier M3 with 1 and 256 feature rows per call: REST with JSON tensors, REST with binary
tensors both ways (tritonclient's defaults), and gRPC (raw contents; bench.loadgen's grpc.aio client,
so compare it with the Python HTTP client's rows, not wrk's); then routed /predict with columns on a
fresh one-worker server per shadow rate (0, 0.01, 0.1: the cost of shadow scoring). Headlines, the issue's
targets: /predict with columns ÷ bare ≥ 1.0, with objects ÷ bare ≥ 0.8, p50 at one connection ≤ 1.2 ×
the bare endpoint's, and batch predictions/s ÷ the in-process path's for the same windows, features
included, ≥ 0.5.

Full: `wrk` when installed (else the Python client), 16 connections, 10 s per row after a 2 s warm-up,
batches of 64 and more on 4 connections; the default family is trained first (a few minutes) unless
`--models` names a store. Quick: the Python client, 1 s per row, one worker, fewer rows, a --quick family.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families

from app import oip, proto, shadow
from app.registry import Family, load_family
from bench import bodies, loadgen, pipeline, server
from bench.common import cli, table
from bench.family import family_store, store_options
from market import features

MAX_BATCH = 1000  # the most TIERED_MAX_BATCH_ITEMS allows (app/settings.py)
OIP_TIER = "M3"
OIP_BATCHES = (1, 256)  # feature rows per Open Inference Protocol call
OIP_ROWS = ("v2 json", "v2 binary", "grpc")
TARGETS = {"columns_over_bare": 1.0, "objects_over_bare": 0.8, "p50_over_bare": 1.2,
           "batch_over_pipeline": 0.5}
AT_MOST = {"p50_over_bare"}  # the other targets are floors
SHADOW_RATES = (0.0, 0.01, 0.1)  # TIERED_SHADOW_RATE of the shadow rows (the other rows: the default)


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
    shadow_rates: tuple[float, ...] = SHADOW_RATES  # one server each (one worker): routed /predict


FULL = Plan((1, 2), 10.0, 2.0, 16, 4, None, (1, 64, MAX_BATCH), 64, 3000, "auto")
QUICK = Plan((1,), 1.0, 0.3, 16, 4, ("M0", "M3"), (1, 64), 16, 300, "python")


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
                grpc_port = server.free_port()
                settings = {"TIERED_MAX_BATCH_ITEMS": str(MAX_BATCH), "TIERED_MAX_BODY_BYTES": str(64 << 20),
                            "TIERED_GRPC_PORT": str(grpc_port)}
                with server.running(store.path, workers, log, settings) as url:
                    target = f"{server.HOST}:{grpc_port}"
                    mix = mix or check_answers(url, windows, tiers, plan.batch_sizes)
                    check_oip(url, target, offline["features"])
                    http += measure_http(url, windows, plan, workers, client, tiers)
                    http += measure_oip(url, target, offline["features"], plan, workers, client)
            for rate in plan.shadow_rates:
                log = Path(tmp) / f"server-shadow-{rate:g}.log"
                with server.running(store.path, 1, log, {"TIERED_SHADOW_RATE": str(rate)}) as url:
                    http.append(measure_shadow(url, windows, plan, client, rate))
    offline.pop("features")
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
    return {"features": f, "onnxruntime": ort,
            "features_us": pipeline.features_us(family, windows, plan.ort_runs),
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
        for k in range(len(windows.ends)):  # the forms of one window answer alike (latency aside)
            same = [_ok(c.post("/predict", content=windows.body(k, form))) for form in ("objects", "columns")]
            if [{**a, "latency_us": 0} for a in same[1:]] != [{**same[0], "latency_us": 0}]:
                raise server.ServerFailed(f"window {k} as objects and as columns answered differently")
        for size in sizes:
            if len(_ok(c.post("/predict/batch", content=windows.batch(0, size)))["results"]) != size:
                raise server.ServerFailed(f"/predict/batch of {size} did not answer {size} results")
    n = len(windows.ends)
    return {name: {k: v / n for k, v in sorted(c.items())} for name, c in counts.items()}


def check_oip(url: str, target: str, x: np.ndarray) -> None:
    """The three protocols give M3's one answer for the same rows before any load."""
    rows = x[:4]
    path = f"/v2/models/{OIP_TIER}/infer"
    with httpx.Client(base_url=url, timeout=60.0) as c:
        by_json = _ok(c.post(path, content=bodies.oip_json(rows)))["outputs"][0]["data"]
        body, headers = bodies.oip_binary(rows)
        binary = c.post(path, content=body, headers=dict(headers))
    if binary.status_code != 200:
        raise server.ServerFailed(f"{path} with binary tensors answered {binary.status_code}: "
                                  f"{binary.text[:300]}")
    raw = binary.content[int(binary.headers[oip.HEADER_LENGTH]):]
    with grpc.insecure_channel(target) as channel:
        answer = channel.unary_unary(bodies.GRPC_INFER)(bodies.grpc_infer(OIP_TIER, rows), timeout=60)
    by_grpc = proto.messages().ModelInferResponse.FromString(answer).raw_output_contents[0]
    if not by_json == np.frombuffer(raw, "<f4").tolist() == np.frombuffer(by_grpc, "<f4").tolist():
        raise server.ServerFailed("REST JSON, REST binary and gRPC answered the same rows differently")


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise server.ServerFailed(f"{response.request.url.path} answered {response.status_code}: "
                                  f"{response.text[:300]}")
    answer: dict[str, Any] = orjson.loads(response.content)
    return answer


def measure_http(url: str, windows: bodies.Windows, plan: Plan, workers: int, client: str,
                 tiers: list[str]) -> list[dict[str, Any]]:
    n = len(windows.ends)
    routed = {form: [windows.body(k, form) for k in range(n)] for form in bodies.FORMS}
    rows: list[tuple[str, str, list[bytes], int, int]] = [
        ("bare", "/bench/bare", routed["objects"], plan.connections, 1),
        *((form, "/predict", routed[form], plan.connections, 1) for form in bodies.FORMS),
        *((f"tier {t}", "/predict", [windows.body(k, "columns", tier=t) for k in range(n)],
           plan.connections, 1) for t in tiers),
        ("bare @1", "/bench/bare", routed["objects"], 1, 1),
        ("objects @1", "/predict", routed["objects"], 1, 1),
        ("columns @1", "/predict", routed["columns"], 1, 1),
    ]
    for size in plan.batch_sizes:
        count = max(2, min(n, 2048 // size))  # bodies of up to 1,000 windows: a few are enough
        batch = [windows.batch(j * size, size, "columns") for j in range(count)]
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


def measure_oip(url: str, target: str, x: np.ndarray, plan: Plan, workers: int,
                client: str) -> list[dict[str, Any]]:
    """REST JSON, REST binary and gRPC on M3 with 1 and 256 rows per call, rotating through the rows."""
    n, measured = len(x), []
    path = f"/v2/models/{OIP_TIER}/infer"
    for size in OIP_BATCHES:
        count = max(2, min(n, 2048 // size))
        batches = [x[[(k * size + j) % n for j in range(size)]] for k in range(count)]
        connections = plan.connections if size == 1 else plan.batch_connections
        binary = [bodies.oip_binary(b) for b in batches]
        rest = partial(loadgen.measure, url, client=client)
        loads = [("v2 json", rest, loadgen.Load(path, [bodies.oip_json(b) for b in batches], connections,
                                                 plan.seconds)),
                 ("v2 binary", rest, loadgen.Load(path, [b for b, _ in binary], connections, plan.seconds,
                                                   binary[0][1])),
                 ("grpc", partial(loadgen.run_grpc, target),
                  loadgen.Load(bodies.GRPC_INFER, [bodies.grpc_infer(OIP_TIER, b) for b in batches],
                               connections, plan.seconds))]
        for name, run, load in loads:
            print(f"bench.serve: {workers} worker(s), {name} ×{size}", file=sys.stderr)
            if plan.warmup:
                run(replace(load, seconds=plan.warmup))
            m = run(load)
            measured.append({"workers": workers, "row": f"{name} ×{size}", "path": load.path,
                             "connections": connections, "batch": size, "predictions_per_s": m.rps * size,
                             **m.to_dict()})
    return measured


def measure_shadow(url: str, windows: bodies.Windows, plan: Plan, client: str, rate: float) -> dict[str, Any]:
    """Routed /predict (columns) on a server shadowing `rate` of its answers, and how many it shadowed."""
    payloads = [windows.body(k, "columns") for k in range(len(windows.ends))]
    load = loadgen.Load("/predict", payloads, plan.connections, plan.seconds)
    print(f"bench.serve: 1 worker, shadow rate {rate:g}", file=sys.stderr)
    if plan.warmup:
        loadgen.measure(url, loadgen.Load("/predict", payloads, plan.connections, plan.warmup), client)
    m = loadgen.measure(url, load, client)
    with httpx.Client(base_url=url, timeout=30.0) as c:
        exposition = c.get("/metrics").text
    shadowed = sum(s.value for f in text_string_to_metric_families(exposition) for s in f.samples
                   if s.name == f"{shadow.COMPARED}_total")
    served = sum(s.value for f in text_string_to_metric_families(exposition) for s in f.samples
                 if s.name == "tiered_predictions_total")
    return {"workers": 1, "row": f"shadow {rate:g}", "path": "/predict", "connections": plan.connections,
            "batch": 1, "predictions_per_s": m.rps, "shadow_rate": rate, "comparisons": shadowed,
            "served": served, **m.to_dict()}


def headline(http: list[dict[str, Any]], raw: dict[str, float], plan: Plan) -> list[dict[str, Any]]:
    big = max(plan.batch_sizes)
    out = []
    for workers in plan.workers:
        row = {r["row"]: r for r in http if r["workers"] == workers}
        bare = row["bare"]["rps"]
        out.append({"workers": workers, "columns_over_bare": row["columns"]["rps"] / bare,
                    "objects_over_bare": row["objects"]["rps"] / bare,
                    "p50_over_bare": row["columns @1"]["p50_ms"] / row["bare @1"]["p50_ms"],
                    "batch": big,
                    "batch_over_pipeline": row[f"batch {big}"]["predictions_per_s"] / raw[str(big)]})
    return out


def met(name: str, value: float) -> bool:
    return value <= TARGETS[name] if name in AT_MOST else value >= TARGETS[name]


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    workers = sorted({r["workers"] for r in result["http"]})
    names = [r["row"] for r in result["http"]
             if r["workers"] == workers[0] and r["batch"] == 1 and "shadow_rate" not in r]
    width = 0.8 / len(workers)
    for j, w in enumerate(workers):
        rps = {r["row"]: r["rps"] for r in result["http"] if r["workers"] == w}
        left.bar([i + j * width for i in range(len(names))], [rps[n] for n in names], width,
                 label=f"{w} worker{'s' if w > 1 else ''}")
    left.set_xticks([i + width * (len(workers) - 1) / 2 for i in range(len(names))], names, rotation=30)
    left.set_ylabel("requests/s")
    left.set_title(f"one window (or M3 feature row) per request ({result['client']}, "
                   f"{result['plan']['connections']} conns)")
    left.legend()
    sizes = sorted({r["batch"] for r in result["http"] if r["path"] == "/predict/batch"})
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


HEADS = {"columns_over_bare": "/predict columns ÷ bare", "objects_over_bare": "/predict objects ÷ bare",
         "p50_over_bare": "p50 @1 columns ÷ bare", "batch_over_pipeline": "batch ÷ in-process"}


def markdown(result: dict[str, Any]) -> str:
    http, plan = result["http"], result["plan"]
    bare = {r["workers"]: r["rps"] for r in http if r["row"] == "bare"}
    rows = [[r["workers"], f"`{r['path']}` {r['row']}", r["connections"], r["rps"], r["predictions_per_s"],
             r["p50_ms"], r["p99_ms"], r["rps"] / bare[r["workers"]] if r["batch"] == 1 else None,
             r["errors"]] for r in http if "shadow_rate" not in r]
    shadowed = [r for r in http if "shadow_rate" in r]
    off = next((r for r in shadowed if r["shadow_rate"] == 0), None)
    shadow_rows = [[f"`/predict` {r['row']}", r["rps"], r["p50_ms"], r["p99_ms"],
                    off and r["rps"] / off["rps"], off and r["p99_ms"] / off["p99_ms"], r["comparisons"],
                    r["served"], r["errors"]] for r in shadowed]
    ort = [[o["tier"], o["params"], o["batch1_us"], o["batch1024_per_s"], o["registry_startup_us"]]
           for o in result["onnxruntime"]]
    fx, px = result["features_us"], result["parse_us"]
    pipe = {int(b): v for b, v in result["pipeline"].items()}
    served1 = {r["batch"]: r["predictions_per_s"] for r in http
               if r["workers"] == 1 and r["path"] == "/predict/batch"}
    batch_rows = [[b, pipe[b], served1.get(b), served1[b] / pipe[b] if b in served1 else None]
                  for b in sorted(pipe)]
    heads = [[h["workers"], *(f"{h[k]:.2f} ({'met' if met(k, h[k]) else 'NOT met'})" for k in HEADS)]
             for h in result["headline"]]
    targets = [f"{HEADS[k]} {'≤' if k in AT_MOST else '≥'} {v}" for k, v in TARGETS.items()]
    mix = ", ".join(f"{k} {v:.0%}" for k, v in result["served_mix"]["tier"].items())
    return "\n\n".join([
        f"Load: {result['client']}, {plan['seconds']:.0f} s per row after {plan['warmup']:.1g} s of warm-up, "
        f"loopback, access log off for every row; family `{result['family']['family_id']}`. Routed "
        f"rotation: {mix} of requests answered by each tier. 1-minute load average "
        f"{result['load_average']['before']:.1f} before, {result['load_average']['after']:.1f} after.",
        table(["workers", "endpoint", "conns", "requests/s", "predictions/s", "p50 ms", "p99 ms",
               "÷ bare", "errors"], rows),
        oip_table(result),
        "Shadow scoring (TIERED_SHADOW_RATE; one worker, a fresh server per rate, routed /predict with "
        f"columns at {plan['connections']} connections; comparisons: answers × larger tiers shadowed):\n\n"
        + table(["endpoint, shadow rate", "requests/s", "p50 ms", "p99 ms", "requests/s ÷ rate 0",
                 "p99 ÷ rate 0", "comparisons", "answers", "errors"], shadow_rows),
        "Targets: " + "; ".join(targets) + ".\n\n" + table(["workers", *HEADS.values()], heads),
        "onnxruntime alone (the app's session options, 1 thread):\n\n"
        + table(["tier", "params", "batch-1 µs/call", "batch-1024 predictions/s", "registry's startup µs"],
                ort),
        f"Per window, in-process: decoding the body into the data plane's query {px['objects']:.0f} µs as "
        f"candle objects, {px['columns']:.0f} µs as columns; inside a batch of {px['batch_size']:.0f}, "
        f"{px['batch_objects']:.0f} and {px['batch_columns']:.0f} µs; then window_of "
        f"{fx['window_of']:.1f} µs + features {fx['compute']:.1f} µs + regime {fx['detect']:.1f} µs = "
        f"{fx['total']:.1f} µs before "
        "onnxruntime.\n\n"
        + table(["windows per call", "in-process predictions/s", "/predict/batch columns (1 worker)",
                 "ratio"], batch_rows),
        reading(result),
    ])


def oip_table(result: dict[str, Any]) -> str:
    """The Open Inference Protocol on M3: predictions/s and p50 per protocol, 1 and 256 rows per call."""
    http = {(r["workers"], r["row"]): r for r in result["http"]}
    rows = []
    for workers in sorted({w for w, _ in http}):
        bare = http[(workers, "bare")]
        rows.append([workers, "bare endpoint (one window, no model)", bare["client"], bare["rps"],
                     bare["p50_ms"], None, None])
        for name in OIP_ROWS:
            one, many = (http[(workers, f"{name} ×{size}")] for size in OIP_BATCHES)
            rows.append([workers, f"{name} ({OIP_TIER})", one["client"], one["predictions_per_s"],
                         one["p50_ms"], many["predictions_per_s"], many["p50_ms"]])
    return (f"The Open Inference Protocol on tier {OIP_TIER} (feature rows in, no routing), in the same run "
            f"as the bare endpoint:\n\n" + table(
                ["workers", "protocol", "client", f"predictions/s ×{OIP_BATCHES[0]}", "p50 ms",
                 f"predictions/s ×{OIP_BATCHES[1]}", "p50 ms"], rows))


def reading(result: dict[str, Any]) -> str:
    h1 = result["headline"][0]
    http = {(r["workers"], r["row"]): r for r in result["http"]}
    bare, columns, objects = http[(1, "bare")], http[(1, "columns")], http[(1, "objects")]
    px = result["parse_us"]
    served_us = 1e6 / http[(1, f"batch {h1['batch']}")]["predictions_per_s"]
    pipe_us = 1e6 / result["pipeline"][str(h1["batch"])]
    parts = [
        f"With one worker the bare endpoint answers {bare['rps']:.0f} requests/s, /predict "
        f"{columns['rps']:.0f} with columns and {objects['rps']:.0f} with candle objects "
        f"({h1['columns_over_bare']:.2f} and "
        f"{h1['objects_over_bare']:.2f} of bare); at one connection the p50 is "
        f"{http[(1, 'columns @1')]['p50_ms']:.2f} ms against {http[(1, 'bare @1')]['p50_ms']:.2f} ms "
        f"({h1['p50_over_bare']:.2f}×).",
        f"At {h1['batch']} columnar windows per call /predict/batch reaches "
        f"{h1['batch_over_pipeline']:.2f} of the in-process path "
        f"({result['pipeline'][str(h1['batch'])]:.0f} predictions/s): the server spends "
        f"{served_us:.0f} µs per window, of which decoding takes {px['batch_columns']:.0f} µs in-process and "
        f"features, regime and onnxruntime {pipe_us:.0f} µs; the other "
        f"{served_us - px['batch_columns'] - pipe_us:.0f} µs go to the window rules, encoding the answers "
        "and HTTP.",
    ]
    one, many = ({name: http[(1, f"{name} ×{size}")]["predictions_per_s"] for name in OIP_ROWS}
                 for size in OIP_BATCHES)
    parts.append(f"On {OIP_TIER} through the Open Inference Protocol, one row per call: REST JSON "
                 f"{one['v2 json']:.0f}, REST binary {one['v2 binary']:.0f}, gRPC {one['grpc']:.0f} "
                 f"predictions/s; {OIP_BATCHES[1]} rows per call: {many['v2 json']:.0f}, "
                 f"{many['v2 binary']:.0f} and {many['grpc']:.0f}.")
    missed = [HEADS[k] for k in HEADS if not met(k, h1[k])]
    parts.append("Every target met with one worker." if not missed
                 else f"NOT met with one worker: {', '.join(missed)}.")
    if len(result["headline"]) > 1:
        two = http[(2, "columns")]
        parts.append(f"Two workers serve /predict with columns at {two['rps']:.0f} requests/s "
                     f"({two['rps'] / columns['rps']:.2f}× one worker, on 2 cores shared with the load "
                     "generator).")
    shadowed = sorted((r for r in result["http"] if "shadow_rate" in r), key=lambda r: r["shadow_rate"])
    if shadowed:
        parts.append("Shadow scoring at rates " + ", ".join(f"{r['shadow_rate']:g}" for r in shadowed)
                     + ": " + ", ".join(f"{r['rps']:.0f}" for r in shadowed) + " requests/s, p99 "
                     + ", ".join(f"{r['p99_ms']:.2f}" for r in shadowed) + " ms.")
    errors = sum(r["errors"] for r in result["http"])
    parts.append("No request failed." if errors == 0 else f"{errors} requests FAILED (the errors column).")
    return " ".join(parts)


if __name__ == "__main__":
    extra, rest = store_options(sys.argv[1:])
    cli("serve", partial(run, **extra), markdown, rest)
