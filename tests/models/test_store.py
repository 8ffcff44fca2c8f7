"""The model store: families land whole or not at all; CURRENT and manifests are read strictly."""

import json
from pathlib import Path

import pytest

from models.manifest import Manifest
from models.store import (
    StoreError,
    load_current,
    load_family_dir,
    read_current,
    read_manifest,
    set_current,
    sha256_file,
    write_family,
)

TIER = {
    "role": "tiny", "teacher": None, "sha256": "", "layers": 2, "width": 4, "params": 10,
    "compression": 1.0, "alpha": None, "temperature": None, "metrics": {}, "per_regime": {},
    "parity_max_abs_diff": 0.0, "latency_us_batch1": 1.0, "train_seconds": 0.1,
}


SKILL = {
    "metric": "r2", "confidence": 0.95, "resamples": 10, "block_length": 1, "block_rule": "fixed",
    "best_baseline": "mean", "overall": {}, "per_regime": {}, "skills": {}, "verdict": "none",
    "regime_verdicts": {},
}


def manifest(family_id: str) -> Manifest:
    return Manifest.model_validate({
        "family_id": family_id, "created_at": "2026-01-01T00:00:00Z", "source": {"kind": "synthetic"},
        "target": {"name": "return", "horizon": 1, "units": "log return", "kind": "regression",
                   "description": "the next bar's log return", "params": {}},
        "features": {"window": 48, "version": 1, "names": ["a"], "use_book": True},
        "input": {"name": "features", "shape": [None, 1]},
        "output": {"name": "return", "shape": [None, 1]},
        "regime": {"thresholds": {"calm": 1.0}, "tier_map": {"calm": "M0"}, "names": ["calm"]},
        "tiers": [{**TIER, "name": "M0", "file": "M0.onnx"}],
        "baselines": {}, "classical": {}, "references": {}, "skill": SKILL, "config": {},
    })


def write(store: Path, family_id: str, tmp_path: Path) -> Path:
    blob = tmp_path / f"{family_id}.bin"
    blob.write_bytes(family_id.encode())
    return write_family(store, manifest(family_id), {"M0.onnx": blob})


def test_a_written_family_reads_back_and_becomes_current(tmp_path):
    store = tmp_path / "store"
    family_dir = write(store, "fam-1", tmp_path)
    assert read_current(store) == "fam-1"
    loaded_dir, loaded = load_current(store)
    assert loaded_dir == family_dir and loaded == manifest("fam-1")
    assert sha256_file(family_dir / "M0.onnx") == sha256_file(tmp_path / "fam-1.bin")


def test_writing_leaves_no_temporary_directory_and_never_reuses_an_id(tmp_path):
    store = tmp_path / "store"
    write(store, "fam-1", tmp_path)
    assert sorted(p.name for p in store.iterdir()) == ["CURRENT", "fam-1"]
    with pytest.raises(StoreError, match="already exists"):
        write(store, "fam-1", tmp_path)


def test_a_failed_write_leaves_nothing_half_written(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(FileNotFoundError):
        write_family(store, manifest("fam-2"), {"M0.onnx": tmp_path / "missing.bin"})
    assert list(store.iterdir()) == []


def test_current_can_only_point_at_a_complete_family(tmp_path):
    store = tmp_path / "store"
    write(store, "fam-1", tmp_path)
    with pytest.raises(StoreError, match=r"no manifest\.json"):
        set_current(store, "fam-404")
    assert read_current(store) == "fam-1"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "is missing"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"schema_version": 99}), "schema_version 99"),
        (json.dumps({"schema_version": 1, "family_id": "x"}),
         "schema_version 1; this service reads version 2: retrain the family"),
        (json.dumps({"schema_version": 2, "family_id": "x"}), "manifest.json: created_at"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_file_and_the_problem(tmp_path, content, words):
    if isinstance(content, bytes):
        (tmp_path / "manifest.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(StoreError) as e:
        read_manifest(tmp_path)
    assert str(tmp_path / "manifest.json") in str(e.value) and words in str(e.value)


def test_a_missing_or_garbled_current_is_refused_with_the_fix(tmp_path):
    with pytest.raises(StoreError, match="tiered train"):
        read_current(tmp_path)
    (tmp_path / "CURRENT").write_text("../../etc\n")
    with pytest.raises(StoreError, match="not a family id"):
        read_current(tmp_path)


def test_a_family_is_read_by_its_id_whatever_current_says(tmp_path):
    store = tmp_path / "store"
    first = write(store, "fam-1", tmp_path)
    write(store, "fam-2", tmp_path)
    assert read_current(store) == "fam-2"
    assert load_family_dir(store, "fam-1") == (first, manifest("fam-1"))


def test_a_directory_whose_manifest_names_another_family_is_refused_naming_both(tmp_path):
    store = tmp_path / "store"
    family_dir = write(store, "fam-1", tmp_path)
    family_dir.rename(store / "fam-copy")
    set_current(store, "fam-copy")
    for load in (lambda: load_current(store), lambda: load_family_dir(store, "fam-copy")):
        with pytest.raises(StoreError, match=r"names family 'fam-1', but its directory is fam-copy"):
            load()
