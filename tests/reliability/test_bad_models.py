"""Bad models: one broken tier file leaves the service up and degraded, with exactly that tier refused
and its traffic answered by the nearest tier; an unusable manifest stops `tiered serve` with one line,
and on reload leaves the old family serving.

tests/app/test_registry.py already damages M1 four ways (missing, truncated, random bytes, swapped)
and checks /tiers, /readyz, /v2/models/M1/ready and one fallback answer. Here each of the five faults,
the wrong input shape included, hits both ends of the chain (M0 falls back to the smaller M1, having no
larger neighbour; M3 to M2), every surface that reports a tier is checked, every window the router
sends to the broken tier is followed, and no error body reveals a path or a stack trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from market.features import FEATURE_NAMES
from models.store import CURRENT, MANIFEST, set_current

F = len(FEATURE_NAMES)

FALLBACK = {"M0": "M1", "M3": "M2"}  # the nearest available tier: larger neighbour first, else smaller
PARTNER = {"M0": "M1", "M1": "M0", "M2": "M3", "M3": "M2"}  # a tier file with the same signature


def edit_manifest(family_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = family_dir / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def missing(family_dir: Path, tier: str) -> None:
    (family_dir / f"{tier}.onnx").unlink()


def truncated(family_dir: Path, tier: str) -> None:
    path = family_dir / f"{tier}.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def random_bytes(family_dir: Path, tier: str) -> None:
    path = family_dir / f"{tier}.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def swapped(family_dir: Path, tier: str) -> None:
    shutil.copyfile(family_dir / f"{PARTNER[tier]}.onnx", family_dir / f"{tier}.onnx")


def wrong_input_width(family_dir: Path, tier: str) -> None:
    """A valid ONNX file with one input feature fewer than the family, whose sha256 the manifest is given:
    only the shape check can catch it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((F - 1, 1), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["prediction"])], "narrow",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, F - 1])],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, 1])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = family_dir / f"{tier}.onnx"
    onnx.save(model, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    def fix_sha(m: dict[str, Any]) -> None:
        next(t for t in m["tiers"] if t["name"] == tier)["sha256"] = digest
    edit_manifest(family_dir, fix_sha)


FAULTS: list[tuple[str, Callable[[Path, str], None], str]] = [
    ("missing", missing, "is missing"),
    ("truncated", truncated, "sha256"),
    ("random_bytes", random_bytes, "sha256"),
    ("swapped_with_another_tier", swapped, "sha256"),
    ("wrong_input_shape", wrong_input_width, f"input features is tensor(float) [None, {F - 1}]"),
]


@pytest.mark.parametrize("tier", ["M0", "M3"])
@pytest.mark.parametrize(("fault", "words"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_a_broken_tier_is_refused_alone_and_its_traffic_falls_back_to_the_nearest_tier(
        store_copy, client_for, batch_body, discreet, fault, words, tier):
    store, family_dir = store_copy
    fault(family_dir, tier)
    with client_for(store) as c:
        family = c.get("/tiers").json()
        ready = c.get("/readyz")
        v2_ready = c.get(f"/v2/models/{tier}/ready")
        server_ready = c.get("/v2/health/ready")
        infer = c.post(f"/v2/models/{tier}/infer", json={"inputs": [
            {"name": "features", "shape": [1, F], "datatype": "FP32", "data": [0.0] * F}]})
        batch = c.post("/predict/batch", json=batch_body)
        single = c.post("/predict", json=batch_body["items"][0])
        metrics = c.get("/metrics").text
    broken = {t["name"]: t for t in family["tiers"] if not t["available"]}
    assert list(broken) == [tier], "exactly the damaged tier is unavailable"
    assert words in broken[tier]["problem"] and broken[tier]["latency_us"] is None
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert list(ready.json()["unavailable"]) == [tier] and tier not in ready.json()["available"]
    assert v2_ready.status_code == 503 and words in v2_ready.json()["error"]
    assert server_ready.status_code == 503 and infer.status_code == 503
    assert f'tiered_tier_available{{tier="{tier}"}} 0' in metrics
    assert batch.status_code == 200 and single.status_code == 200
    results = batch.json()["results"]
    rerouted = [r for r in results if r["requested_tier"] == tier]
    assert rerouted, f"the rotation has no window the router sends to {tier}"
    assert all((r["tier"], r["reason"]) == (FALLBACK[tier], "fallback") for r in rerouted)
    assert all(r["reason"] == "regime" and r["tier"] == r["requested_tier"]
               for r in results if r["requested_tier"] != tier), "other tiers' traffic is untouched"
    for error in (v2_ready, server_ready, infer):
        discreet(error.text)
    discreet(json.dumps(broken[tier]))


@pytest.mark.slow
def test_tiered_serve_starts_degraded_over_a_family_with_a_broken_tier(
        store_copy, serve, tmp_path, batch_body):
    store, family_dir = store_copy
    random_bytes(family_dir, "M1")
    with serve(store, tmp_path / "server.log") as server:
        ready = httpx.get(f"{server.url}/readyz").json()
        out = httpx.post(f"{server.url}/predict/batch", json=batch_body, timeout=30).json()
    assert ready["status"] == "degraded" and list(ready["unavailable"]) == ["M1"]
    assert {r["tier"] for r in out["results"] if r["requested_tier"] == "M1"} == {"M0"}


def manifest_missing(family_dir: Path) -> None:
    (family_dir / MANIFEST).unlink()


def manifest_not_json(family_dir: Path) -> None:
    (family_dir / MANIFEST).write_text('{"schema_version": 1, "family_id": ')


def manifest_not_text(family_dir: Path) -> None:
    (family_dir / MANIFEST).write_bytes(np.random.default_rng(1).bytes(4096))


def manifest_is_a_directory(family_dir: Path) -> None:
    (family_dir / MANIFEST).unlink()
    (family_dir / MANIFEST).mkdir()


def manifest_schema_1(family_dir: Path) -> None:
    edit_manifest(family_dir, lambda m: m.update(schema_version=1))


MANIFEST_FAULTS: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing", manifest_missing, "is missing"),
    ("not_json", manifest_not_json, "is not JSON"),
    ("not_utf8_text", manifest_not_text, "is not UTF-8 text"),
    ("a_directory", manifest_is_a_directory, "cannot be read"),
    ("older_schema_version", manifest_schema_1, "schema_version 1; this service reads version 2: retrain"),
]


@pytest.mark.parametrize(("fault", "words"), [f[1:] for f in MANIFEST_FAULTS],
                         ids=[f[0] for f in MANIFEST_FAULTS])
@pytest.mark.slow
def test_tiered_serve_refuses_an_unusable_manifest_with_one_line(store_copy, discreet, fault, words):
    store, family_dir = store_copy
    fault(family_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERED_")}
    tiered = Path(sys.executable).parent / "tiered"
    # Port 9 (discard) is never bound: the command must stop before it tries to serve.
    run = subprocess.run([str(tiered), "serve", "--models", str(store), "--port", "9"], env=env,
                         capture_output=True, text=True, timeout=120)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1, run.stderr
    assert f"{family_dir.name}/{MANIFEST}" in lines[0] and words in lines[0], lines[0]
    discreet(lines[0].replace(str(store), "<store>"))  # the one path it names is the store given to it


def new_family(family_dir: Path, family_id: str) -> Path:
    """A complete copy of the family under a new id (CURRENT is left alone)."""
    copy = family_dir.parent / family_id
    shutil.copytree(family_dir, copy)
    edit_manifest(copy, lambda m: m.update(family_id=family_id))
    return copy


@pytest.mark.parametrize(("fault", "words"), [f[1:] for f in MANIFEST_FAULTS],
                         ids=[f[0] for f in MANIFEST_FAULTS])
def test_reload_to_an_unusable_manifest_keeps_the_old_family(
        store_copy, client_for, admin_token, batch_body, discreet, fault, words):
    store, family_dir = store_copy
    with client_for(store) as c:
        old = c.get("/tiers").json()["family_id"]
        broken = new_family(family_dir, "fam-broken")
        set_current(store, "fam-broken")
        fault(broken)
        r = c.post("/admin/reload", headers={"Authorization": f"Bearer {admin_token}"})
        after = c.post("/predict", json=batch_body["items"][0])
        ready = c.get("/readyz").json()
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "family_refused"
    assert f"fam-broken/{MANIFEST}" in r.json()["error"]["message"] and words in r.json()["error"]["message"]
    discreet(r.text)
    assert after.status_code == 200 and after.json()["family_id"] == old
    assert ready == {**ready, "status": "ready", "family_id": old}


@pytest.mark.parametrize("pointer", ["/etc", "../outside", "https://example.com/fam", "fam/../../outside"])
def test_current_pointing_outside_the_store_is_refused(store_copy, client_for, tmp_path, pointer):
    store, family_dir = store_copy
    outside = tmp_path / "outside"
    shutil.copytree(family_dir, outside)
    (store / CURRENT).write_text(pointer + "\n")
    from app.errors import FamilyRefused

    with pytest.raises(FamilyRefused, match="not a family id"), client_for(store):
        pass


def test_a_family_directory_linked_from_outside_the_store_loads_no_model(store_copy, client_for, tmp_path):
    store, family_dir = store_copy
    outside = tmp_path / "outside"
    shutil.move(family_dir, outside)
    family_dir.symlink_to(outside, target_is_directory=True)
    with client_for(store) as c:
        ready = c.get("/readyz")
        problems = ready.json()["unavailable"]
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert set(problems) == {"M0", "M1", "M2", "M3"}
    assert all("outside the model store" in p for p in problems.values())
