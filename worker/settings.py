"""All configuration in one place.

One `Settings` object with nested groups, read from the environment (prefix ``RMSML_``, nested
groups joined by ``__``, e.g. ``RMSML_REPLICA__URL``) or from a ``.env`` file. Secrets are
``SecretStr`` so they never show up in a repr, a log line or a task result.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ReplicaSettings(BaseModel):
    """The RMS read replica. Connected read-only whatever the role allows."""

    url: SecretStr = SecretStr("postgresql+psycopg2://postgres@127.0.0.1:5432/rms_replica")
    statement_timeout_s: int = 900


class PredictionsSettings(BaseModel):
    """The database holding m_l_predictions, run records, the model registry and deliveries."""

    url: SecretStr = SecretStr("postgresql+psycopg2://postgres@127.0.0.1:5432/rms_ml")
    alembic_version_table: str = "ml_alembic_version"


class BrokerSettings(BaseModel):
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    result_backend: SecretStr = SecretStr("redis://127.0.0.1:6379/1")
    result_expires_s: int = 7 * 24 * 3600
    # Redis redelivers unacked messages after this; must exceed the longest task's hard limit.
    visibility_timeout_s: int = 4 * 3600


class WebhookSettings(BaseModel):
    """Receivers of the completion webhook. An empty list means no webhook is sent."""

    urls: list[str] = Field(default_factory=list)
    secret: SecretStr = SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_base_s: float = 30.0


class ScheduleSettings(BaseModel):
    """Crontab fields for beat. UTC avoids the DST hours at which crontabs misfire."""

    timezone: str = "UTC"
    daily: str = "15 4 * * *"
    weekly: str = "45 4 * * 1"
    monthly: str = "15 5 1 * *"
    shard_size: int = 10


class ModelStoreSettings(BaseModel):
    """Where model artifacts are written; each is recorded with its sha256 in the registry."""

    path: Path = PROJECT_ROOT / ".rmsml" / "model_store"


class ForecastSettings(BaseModel):
    demand_daily_horizon_days: int = Field(28, ge=1, le=90)
    demand_hourly_horizon_hours: int = 168
    item_demand_horizon_days: int = 14
    history_days: int = 730
    expires_after_hours: int = 36


class FlowerSettings(BaseModel):
    user: str = "admin"
    password: SecretStr = SecretStr("change-me")
    port: int = 5555


class EmbeddedSettings(BaseModel):
    """The no-server demo: a PostgreSQL started from the pgserver package in a local folder."""

    data_dir: Path = PROJECT_ROOT / ".rmsml" / "pgdata"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RMSML_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    replica: ReplicaSettings = ReplicaSettings()
    predictions: PredictionsSettings = PredictionsSettings()
    broker: BrokerSettings = BrokerSettings()
    webhooks: WebhookSettings = WebhookSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    model_store: ModelStoreSettings = ModelStoreSettings()
    forecast: ForecastSettings = ForecastSettings()
    flower: FlowerSettings = FlowerSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    log_level: str = "INFO"


@lru_cache
def get_settings() -> Settings:
    return Settings()
