"""The service's settings: one pydantic-settings class, read once at startup and injected.

Every field can be set from the environment with the `TIERED_` prefix (`TIERED_PORT=9000`,
`TIERED_ADMIN_TOKEN=...`, `TIERED_CORS_ORIGINS=https://a.example,https://b.example`,
`TIERED_FEEDS=bybit:linear:BTCUSDT:1,replay:eth.csv:10`); `tiered serve` flags override the environment.
Nothing else in the app reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from market.features import WINDOW
from market.feeds.bybit import MAINNET_REST, MAINNET_WS
from market.hysteresis import DEFAULT_BARS, DEFAULT_MARGIN

MIB = 1 << 20
MIN_TOKEN_CHARS = 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERED_", frozen=True)

    models_dir: Path = Field(default=Path("models/store"), description="the store holding CURRENT")
    # Loopback by default: exposing the service is a decision (the container sets TIERED_HOST=0.0.0.0).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    grpc_port: int | None = Field(default=None, ge=1, le=65535, description="the Open Inference Protocol "
                                  "over gRPC on this port, beside HTTP on the same host; unset: off")
    grpc_max_message_bytes: int = Field(default=4 * MIB, ge=1024, le=1 << 30, description="the largest gRPC "
                                        "message received or sent (grpc.max_receive/send_message_length)")
    workers: int = Field(default=1, ge=1, le=64)
    metrics_dir: Path | None = Field(default=None, description="where several workers share their metrics; "
                                     "emptied at start (default: a directory in the system's temp dir)")
    ort_threads: int = Field(default=1, ge=1, le=64, description="onnxruntime intra-op threads per session")
    admin_token: SecretStr | None = Field(default=None, description="/admin Bearer token; unset: admin off")

    max_body_bytes: int = Field(default=4 * MIB, ge=1024)
    # What a client may hold of a worker, enforced by the server itself (app/connections.py, app/limits.py);
    # the README's settings table says why each default.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=600,
                                          description="for a request's line and headers to arrive")
    body_gap_seconds: float = Field(default=10.0, gt=0, le=600,
                                    description="longest silence in the middle of a request body")
    body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600, description="for a whole request body")
    keep_alive_seconds: float = Field(default=75.0, gt=0, le=3600,
                                      description="an idle connection is closed after this long")
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=MIB,
                                  description="request line and headers together")
    max_connections: int = Field(default=1000, ge=8, le=1_000_000,
                                 description="per worker; at most the open-file limit allows")
    max_candles: int = Field(default=2048, ge=2, description="candles accepted in one window")
    max_batch_items: int = Field(default=256, ge=1, le=1000)

    # A window whose features leave the training split's range (market/ranges.py): answered with the
    # features named in `out_of_range` (flag), or refused with a 422 naming them (refuse).
    out_of_range: Literal["flag", "refuse"] = "flag"
    range_margin: float = Field(default=0.5, ge=0.0, le=100.0, description="a feature is out beyond its "
                                "training range widened by this many range widths on each side")

    # Regime threshold overrides; unset fields keep the manifest's calibrated values.
    regime_calm: float | None = None
    regime_volatile: float | None = None
    regime_crisis: float | None = None
    regime_vol_shift: float | None = None
    regime_calm_trend: float | None = None

    # Live symbols (app/live): what to follow, where, and how the answers are pushed.
    feeds: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "feeds to follow, [NAME=]bybit:CATEGORY:SYMBOL:INTERVAL or [NAME=]replay:PATH[:SPEED]; "
        "comma-separated in TIERED_FEEDS"))
    bybit_ws_url: str = Field(default=MAINNET_WS, pattern=r"^wss?://", description="public streams, "
                              "without the category (testnet: wss://stream-testnet.bybit.com/v5/public)")
    bybit_rest_url: str = Field(default=MAINNET_REST, pattern=r"^https?://",
                                description="REST for backfills (testnet: https://api-testnet.bybit.com)")
    bybit_ping_seconds: float = Field(default=20.0, gt=0, description="Bybit asks for a ping every 20 s")
    bybit_pong_timeout_seconds: float = Field(default=10.0, gt=0, description="no pong by then: reconnect")
    bybit_silence_seconds: float = Field(default=90.0, gt=0,
                                         description="no kline push for this long: reconnect")
    bybit_backoff_seconds: float = Field(default=1.0, gt=0, description="first reconnect wait, doubled "
                                         "per attempt, with jitter")
    bybit_max_backoff_seconds: float = Field(default=60.0, gt=0)
    hysteresis_margin: float = Field(default=DEFAULT_MARGIN, ge=0, description="stress units a regime "
                                     "change must clear (bench hysteresis chose the default)")
    hysteresis_bars: int = Field(default=DEFAULT_BARS, ge=1, description="or bars the detector must "
                                 "insist; margin 0 or bars 1: no hysteresis")
    live_window_bars: int = Field(default=500, ge=WINDOW, le=5000, description="bars kept per symbol")
    live_buffer_events: int = Field(default=1000, ge=1, le=100_000, description="events kept per symbol "
                                    "for Last-Event-ID")
    live_subscriber_queue: int = Field(default=1024, ge=1, le=100_000, description="events waiting for "
                                       "one subscriber before it is dropped")
    live_stale_grace_seconds: float = Field(default=10.0, ge=0, description="a symbol is stale when its "
                                            "last prediction is older than one bar plus this")

    # What routing costs (app/shadow.py, app/quality.py, app/decisions.py).
    shadow_rate: float = Field(default=0.01, ge=0.0, le=1.0, description="fraction of routed answers "
                               "also run on every larger tier after they are sent; 0: off")
    quality_window: int = Field(default=1000, ge=1, le=1_000_000, description="realised outcomes kept per "
                                "routed tier and regime for the live scores")
    decision_log: Path | None = Field(default=None, description="write one CloudEvent JSON line per answer "
                                      "here; unset: no log")
    decision_log_max_bytes: int = Field(default=64 * MIB, ge=1024, description="rotate past this size")
    decision_log_backups: int = Field(default=5, ge=0, le=1000, description="rotated files kept")
    decision_log_queue: int = Field(default=10_000, ge=1, le=10_000_000, description="lines waiting for the "
                                    "writer; more are dropped and counted, never waited for")

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                         description="empty: CORS off")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = True
    shutdown_grace_seconds: float = Field(default=10.0, ge=0.0, le=600.0)
    bench_routes: bool = Field(default=False, description="serve POST /bench/bare for the serving benchmark")

    @field_validator("admin_token", mode="before")
    @classmethod
    def _token_is_long_enough(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or len(raw) < MIN_TOKEN_CHARS:
            raise ValueError(f"admin_token must be at least {MIN_TOKEN_CHARS} characters; generate one "
                             "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        return raw

    @model_validator(mode="after")
    def _ports_differ(self) -> Settings:
        if self.grpc_port == self.port:
            raise ValueError(f"grpc_port {self.grpc_port} is the HTTP port too; give gRPC a port of its own")
        return self

    @field_validator("cors_origins", "feeds", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _queue_holds_a_backfill(self) -> Settings:
        if self.live_subscriber_queue < self.live_window_bars:
            raise ValueError(f"live_subscriber_queue ({self.live_subscriber_queue}) must be at least "
                             f"live_window_bars ({self.live_window_bars}): after an outage a feed hands out "
                             "up to a window of backfilled bars at once, and a client reading at full speed "
                             "must not be dropped for that burst")
        return self

    def threshold_overrides(self) -> dict[str, float | None]:
        return {"calm": self.regime_calm, "volatile": self.regime_volatile, "crisis": self.regime_crisis,
                "vol_shift": self.regime_vol_shift, "calm_trend": self.regime_calm_trend}
