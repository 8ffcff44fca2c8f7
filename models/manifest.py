"""The manifest: the contract between the training job and the service (see DESIGN.md).

One `manifest.json` per family. Models here are strict (unknown keys are errors) so a manifest
written by a different schema is refused with a message instead of being half-understood.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
TIER_NAMES: tuple[str, ...] = ("M0", "M1", "M2", "M3")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(Strict):
    name: str
    dtype: Literal["float32"] = "float32"
    shape: list[int | None]  # None is the dynamic batch dimension


class FeatureSection(Strict):
    window: int = Field(ge=2, description="minimum number of candles a request must carry")
    version: int
    names: list[str]
    use_book: bool


class RegimeSection(Strict):
    thresholds: dict[str, float]
    tier_map: dict[str, str]
    names: list[str]


class Metrics(Strict):
    """Test-split scores: mse, r2, directional_accuracy (regression) or accuracy (classification)."""

    mse: float | None = None
    r2: float | None = None
    directional_accuracy: float | None = None
    accuracy: float | None = None
    oracle_share: float | None = None  # r2 / oracle r2 (synthetic data only)
    retention: float | None = None  # headline metric / M0's
    rows: int = 0


class TierEntry(Strict):
    name: str
    role: str
    teacher: str | None
    file: str
    sha256: str
    layers: int
    width: int
    params: int
    compression: float
    alpha: float | None  # None for a tier trained on labels only
    temperature: float | None
    metrics: Metrics
    per_regime: dict[str, Metrics]
    parity_max_abs_diff: float
    latency_us_batch1: float
    train_seconds: float


class Manifest(Strict):
    schema_version: Literal[1] = 1
    family_id: str
    created_at: str
    source: dict[str, object]
    task: Literal["regression", "classification"]
    features: FeatureSection
    input: TensorSpec
    output: TensorSpec
    classes: list[str] | None = None  # classification: output columns are these classes' probabilities
    flat_band: float
    regime: RegimeSection
    tiers: list[TierEntry]
    baselines: dict[str, TierEntry]
    config: dict[str, object]

    def tier(self, name: str) -> TierEntry:
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)
