"""Which family to serve and whether this service can serve it, without loading a model.

`check_family(store, family_id)` reads the manifest of the family `family_id` names (CURRENT's when
None) and checks that it describes the features this service computes, with a regime map onto its own
tiers. The supervisor (`app/supervisor.py`) calls it to pin the family every worker loads, before any
worker starts and on every reload; the registry calls it again in each worker before loading sessions.
It imports no onnxruntime, so the supervisor stays small. Messages name files relative to the store:
clients never learn where the store lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import FamilyRefused
from market import features
from market.ranges import Ranges
from market.regime import REGIMES, Thresholds
from models.manifest import Manifest
from models.store import StoreError, load_current, load_family_dir

Overrides = dict[str, float | None]


@dataclass(frozen=True)
class Checked:
    """A family this service can serve: where it is, its manifest, and the thresholds in use."""

    directory: Path
    manifest: Manifest
    thresholds: Thresholds  # the manifest's, with the settings' overrides applied
    ranges: Ranges | None  # the training split's feature ranges; None in a family that has none

    @property
    def family_id(self) -> str:
        return self.manifest.family_id


def check_family(store: Path, family_id: str | None = None, overrides: Overrides | None = None) -> Checked:
    """The family `family_id` (None: the one CURRENT points at), if this service can serve its manifest;
    FamilyRefused naming the file and the fix otherwise."""
    try:
        directory, manifest = (load_current(store) if family_id is None
                               else load_family_dir(store, family_id))
    except StoreError as e:
        raise FamilyRefused(within_store(str(e), store)) from None
    thresholds = _thresholds(directory, manifest, overrides or {})
    return Checked(directory, manifest, thresholds, _ranges(directory, manifest))


def within_store(message: str, store: Path) -> str:
    """The message with paths relative to the store."""
    for prefix in {str(store), str(store.resolve())}:
        message = message.replace(prefix + "/", "").replace(prefix, "<store>")
    return message


def _thresholds(directory: Path, m: Manifest, overrides: Overrides) -> Thresholds:
    where = f"{directory.name}/manifest.json"
    if m.features.version != features.FEATURE_VERSION or tuple(m.features.names) != features.FEATURE_NAMES:
        raise FamilyRefused(f"{where}: features version {m.features.version} with {len(m.features.names)} "
                            f"names; this service computes version {features.FEATURE_VERSION} with "
                            f"{len(features.FEATURE_NAMES)}: retrain the family with this code")
    if m.features.window != features.WINDOW:
        raise FamilyRefused(f"{where}: features.window is {m.features.window}; this service's pipeline "
                            f"uses {features.WINDOW}: retrain the family with this code")
    if m.input.shape != [None, len(features.FEATURE_NAMES)]:
        width = len(features.FEATURE_NAMES)
        raise FamilyRefused(f"{where}: input shape {m.input.shape}, expected [null, {width}]")
    if m.output.shape != [None, m.target.width]:
        raise FamilyRefused(f"{where}: output shape {m.output.shape} does not fit target {m.target.name} "
                            f"with classes {m.target.classes}: expected [null, {m.target.width}]")
    names = {t.name for t in m.tiers}
    if not names or len(names) != len(m.tiers):
        raise FamilyRefused(f"{where}: tier names must be unique and non-empty")
    missing = [r for r in REGIMES if m.regime.tier_map.get(r) not in names]
    if missing:
        raise FamilyRefused(f"{where}: regime.tier_map sends {missing} to no tier of the family")
    try:
        return Thresholds.from_dict(m.regime.thresholds).override(**overrides)
    except (TypeError, ValueError) as e:
        raise FamilyRefused(f"{where}: regime.thresholds: {e}") from None


def _ranges(directory: Path, m: Manifest) -> Ranges | None:
    section = m.features.ranges
    if section is None:
        return None
    try:
        return Ranges.from_bounds(section.bounds, features.FEATURE_NAMES, section.quantiles)
    except ValueError as e:
        raise FamilyRefused(f"{directory.name}/manifest.json: features.ranges: {e}; retrain the family") \
            from None
