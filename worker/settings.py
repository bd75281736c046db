"""All configuration in one place.

One `Settings` object with nested groups, read from the environment (prefix ``RMSML_``, nested
groups joined by ``__``, e.g. ``RMSML_REPLICA__URL``) or from a ``.env`` file. Secrets are
``SecretStr`` so they never show up in a repr, a log line or a task result.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import AccuracySettings, ForecastSettings, InventorySettings, WebhookSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ReplicaSettings(BaseModel):
    """The RMS read replica. Connected read-only whatever the role allows."""

    url: SecretStr = SecretStr("postgresql+psycopg2://postgres@127.0.0.1:5432/rms_replica")
    statement_timeout_s: int = 900
    # A role that can write (or a superuser) is reported at every run start; true refuses to run on
    # it at all (docs/replica.md: what the reader guarantees on each kind of role).
    refuse_writable_role: bool = False


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
    # How often a worker sweeps for unacked messages older than the visibility timeout (a dead
    # worker's shard): every interval x throttle seconds (kombu's defaults: 10 x 10).
    unacked_restore_interval_s: int = 10
    unacked_restore_throttle: int = 10


class TaskSettings(BaseModel):
    """Limits of the Celery tasks and the per-schedule run lock (worker.locks)."""

    shard_soft_time_limit_s: int = 50 * 60
    shard_time_limit_s: int = 60 * 60
    # Every shard refreshes the lock, so this only needs to outlast one shard; it is how long a
    # run whose workers all died keeps blocking the next trigger of its schedule.
    run_lock_ttl_s: int = 2 * 3600
    # A running run no shard started for this long, with no live shard, is closed as abandoned
    # (worker.run_start.close_abandoned_runs): its workers died or the broker lost its queued shards.
    stranded_after_s: int = Field(600, ge=60)


class ScheduleSettings(BaseModel):
    """Crontab fields for beat. UTC avoids the DST hours at which crontabs misfire."""

    timezone: str = "UTC"
    daily: str = "15 4 * * *"
    weekly: str = "45 4 * * 1"
    monthly: str = "15 5 1 * *"
    # Beat's safety net for webhook deliveries left pending (tasks.webhooks.deliver_due).
    webhook_sweep: str = "*/5 * * * *"
    shard_size: int = 10


class ModelStoreSettings(BaseModel):
    """Where model artifacts are written; each is recorded with its sha256 in the registry."""

    path: Path = PROJECT_ROOT / ".rmsml" / "model_store"


class MetricsSettings(BaseModel):
    """Where each run's Prometheus metrics go (worker.metrics); neither set: none are written."""

    textfile_dir: Path | None = None  # the node exporter's textfile collector directory
    pushgateway_url: str | None = None  # e.g. http://pushgateway:9091


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
        # A rejected value may be a secret or a URL with a password: never echo it in the error.
        hide_input_in_errors=True,
    )

    replica: ReplicaSettings = ReplicaSettings()
    predictions: PredictionsSettings = PredictionsSettings()
    broker: BrokerSettings = BrokerSettings()
    tasks: TaskSettings = TaskSettings()
    webhooks: WebhookSettings = WebhookSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    model_store: ModelStoreSettings = ModelStoreSettings()
    forecast: ForecastSettings = ForecastSettings()
    inventory: InventorySettings = InventorySettings()
    accuracy: AccuracySettings = AccuracySettings()
    flower: FlowerSettings = FlowerSettings()
    metrics: MetricsSettings = MetricsSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    log_level: str = "INFO"
    # text: "time LEVEL logger: message" lines; json: one JSON object per log event (worker.logs)
    log_format: Literal["text", "json"] = "text"


@lru_cache
def get_settings() -> Settings:
    return Settings()
