"""Loading and verifying the family: broken tiers are marked unavailable with the reason and the rest
serve; an unusable manifest stops the start; models load only from the store."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.errors import FamilyRefused
from app.registry import Registry, load_family
from models.store import CURRENT


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def swap_with_m3(path: Path) -> None:
    shutil.copyfile(path.parent / "M3.onnx", path)


def wrong_input_width(path: Path, manifest: dict[str, Any]) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.ones((37, 1), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["prediction"])], "wrong",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 37])],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, 1])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    # The manifest's hash matches, so it is the shape check that must catch it.
    tier = next(t for t in manifest["tiers"] if t["file"] == path.name)
    tier["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()


DAMAGES: list[tuple[str, Callable[..., None], str]] = [
    ("missing", lambda p: p.unlink(), "missing"),
    ("truncated", truncate, "sha256"),
    ("random_bytes", random_bytes, "sha256"),
    ("swapped_with_another_tier", swap_with_m3, "sha256"),
]


@pytest.mark.parametrize(("damage", "words"), [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES])
def test_a_damaged_tier_is_unavailable_with_the_reason_and_the_others_serve(
        store_copy, client_for, make_body, regime_ends, damage, words):
    store, family_dir = store_copy
    damage(family_dir / "M1.onnx")
    with client_for(store) as c:
        m1 = c.get("/tiers/M1").json()
        ready = c.get("/readyz")
        v2 = c.get("/v2/models/M1/ready")
        out = c.post("/predict", json=make_body(end=regime_ends["volatile"])).json()
    assert m1["available"] is False and words in m1["problem"]
    assert str(family_dir) not in m1["problem"], "a reason must not reveal file system paths"
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["available"] == ["M0", "M2", "M3"] and "M1" in ready.json()["unavailable"]
    assert v2.status_code == 503 and words in v2.json()["error"]
    assert (out["tier"], out["reason"]) == ("M0", "fallback")


def test_a_tier_with_the_wrong_input_shape_is_unavailable(store_copy, client_for, manifest_editor):
    store, family_dir = store_copy
    manifest_editor(family_dir, lambda m: wrong_input_width(family_dir / "M2.onnx", m))
    with client_for(store) as c:
        m2 = c.get("/tiers/M2").json()
    assert m2["available"] is False and "input features" in m2["problem"] and "37" in m2["problem"]


@pytest.mark.parametrize("file", ["../M0.onnx", "/etc/hostname", "sub/M0.onnx", ".."])
def test_a_tier_file_outside_the_family_directory_is_never_loaded(store_copy, manifest_editor, file):
    store, family_dir = store_copy

    def point_m0_at(m: dict[str, Any]) -> None:
        m["tiers"][0]["file"] = file
    manifest_editor(family_dir, point_m0_at)
    family = load_family(store)
    assert not family.tiers["M0"].available
    assert "only a file name inside the family" in (family.tiers["M0"].problem or "")


def test_a_symlink_leading_out_of_the_store_is_never_loaded(store_copy, tmp_path):
    store, family_dir = store_copy
    outside = tmp_path / "outside.onnx"
    shutil.move(family_dir / "M3.onnx", outside)
    (family_dir / "M3.onnx").symlink_to(outside)
    family = load_family(store)
    assert not family.tiers["M3"].available
    assert "outside the model store" in (family.tiers["M3"].problem or "")


def set_schema(version: Any) -> Callable[[dict[str, Any]], None]:
    def change(m: dict[str, Any]) -> None:
        m["schema_version"] = version
    return change


def drop_tier_map_entry(m: dict[str, Any]) -> None:
    del m["regime"]["tier_map"]["crisis"]


def other_feature_version(m: dict[str, Any]) -> None:
    m["features"]["version"] = 99


def unknown_threshold(m: dict[str, Any]) -> None:
    m["regime"]["thresholds"]["typo"] = 1.0


MANIFEST_PROBLEMS = [
    ("unknown_schema_version", set_schema(3), "schema_version"),
    ("an_older_schema", set_schema(1), "retrain the family"),
    ("regime_without_a_tier", drop_tier_map_entry, "tier_map"),
    ("other_feature_version", other_feature_version, "features version 99"),
    ("unknown_threshold", unknown_threshold, "typo"),
]


@pytest.mark.parametrize(("change", "words"), [p[1:] for p in MANIFEST_PROBLEMS],
                         ids=[p[0] for p in MANIFEST_PROBLEMS])
def test_an_unusable_manifest_stops_the_start_naming_the_file(
        store_copy, client_for, manifest_editor, change, words):
    store, family_dir = store_copy
    manifest_editor(family_dir, change)
    with pytest.raises(FamilyRefused) as e, client_for(store):
        pass
    assert "manifest.json" in e.value.message and words in e.value.message


@pytest.mark.parametrize(("damage", "words"), [
    (lambda d: (d / "manifest.json").unlink(), "missing"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "not JSON"),
    (lambda d: (d.parent / CURRENT).unlink(), "CURRENT"),
])
def test_a_missing_or_unreadable_manifest_stops_the_start(store_copy, client_for, damage, words):
    store, family_dir = store_copy
    damage(family_dir)
    with pytest.raises(FamilyRefused, match=words), client_for(store):
        pass


def test_threshold_overrides_from_settings_replace_the_manifests(quick_store, client_for, manifest_data):
    with client_for(quick_store, regime_crisis=-100.0) as c:
        thresholds = c.get("/tiers").json()["thresholds"]
    assert thresholds["crisis"] == -100.0
    assert thresholds["calm"] == manifest_data["regime"]["thresholds"]["calm"]


def test_every_tier_is_warmed_up_and_its_latency_measured(quick_store):
    family = Registry(quick_store).load()
    assert family.problems == {}
    assert all(t.latency_us is not None and t.latency_us > 0 for t in family.tiers.values())
