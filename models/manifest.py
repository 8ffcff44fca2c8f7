"""The manifest: the contract between the training job and the service (see DESIGN.md).

One `manifest.json` per family. Models here are strict (unknown keys are errors) so a manifest
written by a different schema is refused with a message instead of being half-understood.

Schema 2 (targets): `target` names what the family predicts (name, horizon, units, kind, classes,
parameters fitted on the training split) in place of schema 1's task / classes / flat_band; the
output tensor is named after the target; `classical` holds the classical baselines (training mean,
persistence, HAR, ridge or logistic) and `skill` every tier's difference to the best of them with a
block-bootstrap confidence interval; `references` what knowing the simulator's truth gives.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 2
TIER_NAMES: tuple[str, ...] = ("M0", "M1", "M2", "M3")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(Strict):
    name: str
    dtype: Literal["float32"] = "float32"
    shape: list[int | None]  # None is the dynamic batch dimension


class FeatureRanges(Strict):
    """Per feature, its `quantiles` on the training split (market/ranges.py): what the family has seen."""

    quantiles: tuple[float, float]
    rows: int = Field(ge=1, description="training rows the quantiles come from")
    bounds: dict[str, tuple[float, float]]  # feature name → (low, high)


class FeatureSection(Strict):
    window: int = Field(ge=2, description="minimum number of candles a request must carry")
    version: int
    names: list[str]
    use_book: bool
    ranges: FeatureRanges | None = None  # None: a family trained before ranges were recorded


class TierMapEvidence(Strict):
    """Why the learned regime → tier map is what it is (training/tiermap.py)."""

    split: str  # where the tiers were scored
    metric: str  # the target's headline metric
    tolerance: float
    rule: str
    quality: dict[str, dict[str, float | None]]  # regime → tier → headline on that regime's rows
    rows: dict[str, int]  # regime → rows the detector put there
    chosen: dict[str, str]  # regime → tier
    reasons: dict[str, str]  # regime → the choice in words
    summary: str


class RegimeSection(Strict):
    thresholds: dict[str, float]
    tier_map: dict[str, str]  # the map in force
    names: list[str]
    tier_map_source: Literal["fixed", "learned"] = "fixed"
    learned: TierMapEvidence | None = None  # computed whichever map is in force


class TargetSection(Strict):
    """What the family predicts (market.targets): the answer's `prediction` is in `units`."""

    name: str
    horizon: int = Field(ge=1, description="bars ahead the target looks")
    units: str
    kind: str = Field(description="how training treats it (training/kinds): regression or classes")
    classes: list[str] | None = None  # kind classes: the output columns are these classes' probabilities
    description: str
    params: dict[str, float] = Field(description="fitted on the training split (e.g. the flat band)")
    volatility_scaled: bool = Field(False, description="learned in units of a volatility forecast from "
                                    "the window, which the exported graph multiplies back")

    @property
    def width(self) -> int:
        return len(self.classes or []) or 1


class Metrics(Strict):
    """Test-split scores. Regression: r2 (headline), mse, directional_accuracy (signed targets).
    Classes: balanced_accuracy (headline), accuracy, log_loss, skills (balanced accuracy of each binary
    skill the target names, e.g. flat_vs_moving, up_vs_down)."""

    mse: float | None = None
    r2: float | None = None
    directional_accuracy: float | None = None
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    log_loss: float | None = None
    skills: dict[str, float | None] | None = None
    oracle_share: float | None = None  # share of the oracle's skill above no skill (synthetic data)
    retention: float | None = None  # share of M0's skill above no skill
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


class ClassicalEntry(Strict):
    """A classical baseline, fitted on the training split only, scored on the same test split."""

    name: str
    description: str
    coefficients: int
    fit_seconds: float
    metrics: Metrics
    per_regime: dict[str, Metrics]


class Reference(Strict):
    """Not a model anyone could run: what knowing the simulator's truth gives (oracle, σ-reference)."""

    name: str
    description: str
    metrics: Metrics
    per_regime: dict[str, Metrics]


class Interval(Strict):
    value: float | None
    low: float | None
    high: float | None


class Versus(Strict):
    """A model's headline minus the best baseline's, with its bootstrap interval."""

    baseline: str
    difference: Interval
    beats: bool  # the whole interval lies above zero


class SkillSection(Strict):
    """Every tier against the best classical baseline on the test split, overall and per regime."""

    metric: str
    confidence: float
    resamples: int
    block_length: int
    block_rule: str
    best_baseline: str
    overall: dict[str, Versus]  # tier or network baseline → its difference to the best baseline
    per_regime: dict[str, dict[str, Versus]]  # regime → the same, against that regime's best baseline
    skills: dict[str, dict[str, Interval]]  # classes targets: tier → skill → balanced accuracy with CI
    verdict: str
    regime_verdicts: dict[str, str]


class Manifest(Strict):
    schema_version: Literal[2] = 2
    family_id: str
    created_at: str
    source: dict[str, object]
    target: TargetSection
    features: FeatureSection
    input: TensorSpec
    output: TensorSpec  # named after the target
    regime: RegimeSection
    tiers: list[TierEntry]
    baselines: dict[str, TierEntry]  # the networks trained beside the chain: one_shot, direct
    classical: dict[str, ClassicalEntry]
    references: dict[str, Reference]
    skill: SkillSection
    config: dict[str, object]

    def tier(self, name: str) -> TierEntry:
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)
