"""Write a family atomically; read `CURRENT` and a family's manifest back, refusing anything half-written.

Layout (DESIGN.md): `<store>/<family_id>/{manifest.json, M0.onnx..M3.onnx, report.*}` and
`<store>/CURRENT` holding the id the service loads. A family is assembled in a hidden temporary
directory beside its final place and renamed in; `CURRENT` is replaced with `os.replace`, so a reader
sees the old family or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from pydantic import ValidationError

from models.manifest import SCHEMA_VERSION, Manifest

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
_FAMILY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StoreError(Exception):
    """A store, CURRENT pointer or manifest that cannot be used; the message names the file and the fix."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_family(store: Path, manifest: Manifest, files: dict[str, Path], make_current: bool = True) -> Path:
    """Copy `files` (name in the family → source path) and the manifest into `<store>/<family_id>`.

    Everything lands in a temporary directory first, which is renamed into place when complete;
    then CURRENT is pointed at it.
    """
    if not _FAMILY_ID.match(manifest.family_id):
        raise StoreError(f"family id {manifest.family_id!r} must be letters, digits, '.', '_' or '-'")
    store.mkdir(parents=True, exist_ok=True)
    final = store / manifest.family_id
    if final.exists():
        raise StoreError(f"{final} already exists; family ids are never reused")
    tmp = Path(tempfile.mkdtemp(prefix=f".{manifest.family_id}.", dir=store))
    try:
        for name, src in files.items():
            shutil.copyfile(src, tmp / name)
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        os.rename(tmp, final)
        _fsync_dir(store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if make_current:
        set_current(store, manifest.family_id)
    return final


def set_current(store: Path, family_id: str) -> None:
    """Point CURRENT at `family_id` with an atomic rename."""
    if not (store / family_id / MANIFEST).is_file():
        raise StoreError(f"{store / family_id} holds no {MANIFEST}; write the family before pointing at it")
    fd, tmp = tempfile.mkstemp(prefix=".CURRENT.", dir=store)
    with os.fdopen(fd, "w") as f:
        f.write(family_id + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, store / CURRENT)
    _fsync_dir(store)


def _read_text(path: Path) -> str:
    """The file as text; any failure to read it as UTF-8 text is a StoreError naming the file and why."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise StoreError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); restore it or retrain") \
            from None
    except FileNotFoundError:
        raise
    except OSError as e:
        raise StoreError(f"{path} cannot be read ({e.strerror}); restore it or retrain") from None


def read_current(store: Path) -> str:
    path = store / CURRENT
    try:
        family_id = _read_text(path).strip()
    except FileNotFoundError:
        raise StoreError(f"{path} is missing; train a family first (tiered train --out {store})") from None
    if not _FAMILY_ID.match(family_id):
        raise StoreError(f"{path} holds {family_id[:60]!r}, which is not a family id")
    return family_id


def read_manifest(family_dir: Path) -> Manifest:
    path = family_dir / MANIFEST
    try:
        raw = _read_text(path)
    except FileNotFoundError:
        raise StoreError(f"{path} is missing; the family is incomplete, retrain it") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise StoreError(f"{path} is not JSON ({e.msg} at line {e.lineno}); retrain the family") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path} is not a JSON object; retrain the family")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{path} has schema_version {version!r}; this service reads version "
                         f"{SCHEMA_VERSION}: retrain the family with this code (tiered train)")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StoreError(f"{path}: {where}: {first['msg']}") from None


def load_current(store: Path, family_id: str | None = None) -> tuple[Path, Manifest]:
    """The directory and manifest of the family CURRENT points at (or of `family_id`, in the store)."""
    if family_id is not None:
        if not _FAMILY_ID.match(family_id) or not (store / family_id).is_dir():
            raise StoreError(f"family {family_id[:60]!r} is not in {store}")
        return store / family_id, read_manifest(store / family_id)
    family_dir = store / read_current(store)
    if not family_dir.is_dir():
        raise StoreError(f"{store / CURRENT} points at {family_dir.name}, which does not exist in {store}")
    return family_dir, read_manifest(family_dir)
