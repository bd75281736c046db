"""All configuration in one place.

One `Settings` object with nested groups, read from the environment (prefix ``RMSML_``, nested
groups joined by ``__``, e.g. ``RMSML_REPLICA__URL``) or from a ``.env`` file. Secrets are
``SecretStr`` so they never show up in a repr, a log line or a task result.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import AccuracySettings, ForecastSettings, InventorySettings

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


def _check_webhook_url(url: str) -> str:
    """A receiver URL must be usable as is: a typo found at 04:15 means a silent night."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; the signature authenticates the sender")
    try:
        parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return url.strip()


def _check_webhook_secret(secret: SecretStr) -> SecretStr:
    """``whsec_`` + base64 of 24-64 bytes (the spec's range), checked strictly.

    The library decodes leniently (stray characters are dropped), so a pasted-wrong secret would
    sign with a different key and every receiver would reject us; fail here instead. The message
    never echoes the secret.
    """
    import base64
    import binascii

    raw = secret.get_secret_value().strip()
    if not raw.startswith("whsec_"):
        raise ValueError("must start with 'whsec_' (Standard Webhooks secret format)")
    body = raw[len("whsec_"):]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be 'whsec_' followed by standard base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"must decode to 24-64 bytes, got {len(key)}")
    return SecretStr(raw)


# Per item, so an error names the element (``webhooks.receivers.0.secrets.1``).
WebhookUrl = Annotated[str, AfterValidator(_check_webhook_url)]
WebhookSecret = Annotated[SecretStr, AfterValidator(_check_webhook_secret)]


class WebhookReceiver(BaseModel):
    """One endpoint in the main backend. During a secret rotation it lists two secrets (new
    first); every request then carries both signatures, so the receiver may switch at any time."""

    model_config = ConfigDict(hide_input_in_errors=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    url: WebhookUrl
    secrets: list[WebhookSecret] = Field(min_length=1, max_length=3)


class WebhookSettings(BaseModel):
    """Receivers of the completion webhook and how hard to try. No receiver: no webhook is sent.

    Two ways to configure receivers (docs/webhooks.md): ``receivers``, a JSON list of
    ``{"name", "url", "secrets"}``; or the shorthand ``urls`` sharing ``secret`` (and
    ``previous_secret`` during a rotation), named ``receiver-1``, ``receiver-2``, ...
    Validation runs when settings load, so a malformed URL or secret stops start-up with the
    setting's name instead of being skipped.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    receivers: list[WebhookReceiver] = Field(default_factory=list)
    urls: list[WebhookUrl] = Field(default_factory=list)
    secret: WebhookSecret = SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    previous_secret: WebhookSecret | None = None
    connect_timeout_s: float = Field(3.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)  # read timeout: the receiver should answer fast and work later
    max_attempts: int = Field(8, ge=1, le=50)
    backoff_base_s: float = Field(30.0, ge=0)
    # Cap on one wait, Retry-After included; must stay below the broker's visibility timeout, or
    # Redis hands the waiting retry to a second worker.
    backoff_max_s: float = Field(3600.0, gt=0)
    # The CLI/demo path sends in-process: it never waits longer than this for receivers, and
    # leaves what is left pending for the sweep (tasks.webhooks) or `webhooks redeliver`.
    inline_budget_s: float = Field(30.0, ge=0)
    response_body_max_chars: int = Field(2000, ge=0)

    @model_validator(mode="after")
    def _unique_names(self) -> "WebhookSettings":
        names = [r.name for r in self.all_receivers()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"receivers: names must be unique, repeated: {duplicates}")
        return self

    def all_receivers(self) -> list[WebhookReceiver]:
        """The explicit receivers, then the shorthand ones."""
        secrets = [self.secret] + ([self.previous_secret] if self.previous_secret else [])
        shorthand = [
            WebhookReceiver(name=f"receiver-{i}", url=url, secrets=secrets)
            for i, url in enumerate(self.urls, start=1)
        ]
        return list(self.receivers) + shorthand

    def receiver(self, name: str) -> WebhookReceiver | None:
        return next((r for r in self.all_receivers() if r.name == name), None)


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
    embedded: EmbeddedSettings = EmbeddedSettings()
    log_level: str = "INFO"


@lru_cache
def get_settings() -> Settings:
    return Settings()
