"""Response models of the service's descriptive endpoints: /tiers, /readyz, /healthz, /admin/reload.

The prediction endpoints' bodies are msgspec types in `app/wire.py`; the Open Inference Protocol's are
in `app/oip.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from models.manifest import FeatureRanges, Metrics, TargetSection, TensorSpec, TierMapEvidence


class ShadowStats(BaseModel):
    comparisons: int = Field(description="answers of this tier also run on the shadow tier (every worker)")
    mean_abs_difference: float | None = Field(description="mean absolute difference of the two outputs")
    agreement: float | None = Field(description="share with the same sign (signed targets) or the same "
                                    "likeliest class; null for targets without one")


class RealisedStats(BaseModel):
    outcomes: int = Field(description="this tier's answers on followed symbols whose target is now known "
                          "(the last quality_window of them)")
    scores: dict[str, dict[str, float | int | None]] = Field(description="scored tier → metric → value on "
                                                             "those same bars: this tier's and the others'")


class LiveStats(BaseModel):
    requests: int = Field(description="predictions served since the service started, every worker summed")
    share: float = Field(description="this tier's share of all predictions served")
    p50_us: float | None
    p99_us: float | None
    shadow: dict[str, dict[str, ShadowStats]] = Field(default_factory=dict, description="larger tier → "
                                                      "regime (and 'all') → how far this tier's answers were "
                                                      "from it")
    realised: dict[str, RealisedStats] = Field(default_factory=dict, description="regime → realised quality "
                                               "of this tier's answers on followed symbols, beside the "
                                               "other tiers' on the same bars (compare per_regime: the "
                                               "training-time scores)")


class TierInfo(BaseModel):
    name: str
    role: str
    teacher: str | None = Field(description="the tier it was distilled from (lineage)")
    layers: int
    width: int
    params: int
    compression: float
    alpha: float | None
    temperature: float | None
    metrics: Metrics
    per_regime: dict[str, Metrics]
    file: str
    sha256: str
    parity_max_abs_diff: float
    available: bool
    problem: str | None = Field(description="why the tier is unavailable")
    latency_us: float | None = Field(description="batch-1 run time measured when this service loaded it")
    latency_us_at_training: float
    live: LiveStats


class FamilyInfo(BaseModel):
    family_id: str
    created_at: str
    target: TargetSection
    source: dict[str, Any]
    window: int = Field(description="candles a request must carry at least")
    use_book: bool
    feature_ranges: FeatureRanges | None = Field(description="each feature's range on the training split, "
                                                 "which every window is compared with (null: not recorded)")
    thresholds: dict[str, float] = Field(description="regime thresholds in use (manifest + overrides)")
    tier_map: dict[str, str] = Field(description="regime → tier, the map in force")
    tier_map_source: Literal["fixed", "learned"] = Field(
        description="learned: per regime the smallest tier within a tolerance of the best on the validation "
                    "split; fixed: the write-up's calm → M3 … crisis → M0")
    tier_map_evidence: TierMapEvidence | None = Field(
        description="each tier's validation score per regime, the rule and the reason for every choice")
    input: TensorSpec
    output: TensorSpec
    tiers: list[TierInfo]
    baselines: dict[str, Metrics]
    classical: dict[str, Metrics] = Field(description="classical baselines on the same test split")
    verdict: str = Field(description="whether any tier beats the best classical baseline")
    headline: str = Field(description="the metric the family is judged on (r2, balanced_accuracy), in "
                          "metrics, per_regime and live.realised")


class Health(BaseModel):
    status: Literal["ok"]


class FeedReadiness(BaseModel):
    status: Literal["connecting", "live", "degraded", "stopped"]
    reason: str = Field(description="why it is not live; empty when live")


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    family_id: str
    available: list[str]
    unavailable: dict[str, str] = Field(description="tier → why it is not serving")
    feeds: dict[str, FeedReadiness] = Field(default_factory=dict, description="followed symbol → its feed's "
                                            "state; one not live makes the service degraded")


class WorkerInfo(BaseModel):
    pid: int | None = Field(description="null: the worker is down, waiting to be started again")
    family_id: str | None = Field(description="the family it serves, or loads when it starts")
    state: Literal["serving", "starting", "down"]


class Reloaded(BaseModel):
    family_id: str = Field(description="the family every serving worker serves now")
    previous_family_id: str
    available: list[str]
    workers: list[WorkerInfo] = Field(description="every worker of this server after the reload")
