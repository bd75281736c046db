"""Settings groups the lower layers take (forecast, inventory, accuracy policy, webhooks).

They live here, below ``features``/``models``/``webhooks``, so those packages can type the
settings they are handed without importing the worker; ``worker.settings.Settings`` assembles
them with the groups only the worker needs (URLs, brokers) and reads the environment.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator


class ForecastSettings(BaseModel):
    demand_daily_horizon_days: int = Field(28, ge=1, le=90)
    demand_hourly_horizon_hours: int = 168
    item_demand_horizon_days: int = 14
    history_days: int = 730
    expires_after_hours: int = 36
    # Days a shard's backtest verdict (chosen model + calibrated intervals) is reused by later runs,
    # which then only refit the chosen model; 0 backtests every run (models.forecasting).
    reselect_days: int = Field(7, ge=0, le=60)
    # Complete local days this close to the as-of day are read from the replica every night even
    # when their aggregates are kept (late edits, refunds, back-dated orders); older kept days are
    # trusted once read this many days after them (features.aggregate_cache, docs/demand.md).
    aggregates_reread_days: int = Field(7, ge=1, le=90)
    # Older kept days are recounted on the replica (orders added or removed since they were read)
    # a slice a night, each once in this many nights: the count costs what the history holds
    aggregates_check_cycle_days: int = Field(7, ge=1, le=60)
    # false: the run reads every day from the replica and keeps nothing (as before issue 28)
    keep_aggregates: bool = True


class InventorySettings(BaseModel):
    """Inventory, pricing and anomaly policy (formulas in docs/inventory.md, pricing.md, anomalies.md)."""

    horizon_days: int = Field(14, ge=1, le=60)  # stock_daily rows
    stockout_horizon_days: int = Field(60, ge=14, le=365)  # how far stockout/reorder look
    usage_history_days: int = 56  # consumption history the usage forecast learns from
    # P(no stockout during a replenishment cycle). Issue 26's rule on the replay's first half (stated
    # before 0.92 and 0.93 were run, after 0.8-0.995 had been): the lowest level with stockout
    # item-days at least 10 % below the chain's own ordering at no more waste; none qualified (0.93: 67 vs 72 at 6.8k vs 7.4k waste; 0.95: 46 at
    # 9.8k), so 0.95 stays (docs/inventory.md, issue 26)
    service_level: float = Field(0.95, gt=0.5, lt=1.0)
    # the stockout row's alarm: P(out before an order placed at the next run could land) at least
    # this (models.reorder.stockout_alarm; docs/inventory.md, "Alarms in time", says why 0.5). Issue
    # 26, the replay's first half, against run-outs without new orders: no threshold in 0.02-0.7
    # reaches recall 0.5 at precision 0.3 (0.08: 0.10 / 0.52; 0.5: 0.24 / 0.07; 0.7: 0.43 / 0.04),
    # so the rare alarm stays; a lower one would cry wolf nine times in ten
    stockout_alarm_probability: float = Field(0.5, gt=0.0, lt=1.0)
    review_period_days: float = 1.0  # the run is daily: an order can be placed once a day
    order_cost: float = 25.0  # fixed cost of placing one purchase order, restaurant currency
    holding_cost_rate_per_year: float = 0.25  # yearly holding cost as a share of unit cost
    soon_days: int = 3  # order_by_date within this many days -> urgency "soon"
    lead_time_history_days: int = 365
    lead_time_min_orders: int = 3  # fewer received orders: the supplier's promise (method "rule")
    # a supplier's recent lateness: its orders placed in the last lead_time_recent_days (open ones
    # censored), shrunk towards "as usual" with the weight of this many orders (models.lead_time)
    lead_time_recent_days: int = Field(5, ge=1, le=60)
    lead_time_recent_prior_orders: float = Field(5.0, ge=0)
    price_history_days: int = 365
    price_max_change_pct: float = Field(10.0, gt=0, le=50)  # recommendation bound around current price
    anomaly_history_days: int = 56
    anomaly_z: float = 4.0  # |robust z| above this is an anomaly


class AccuracySettings(BaseModel):
    """Realised accuracy, drift alerts and the run report (docs/accuracy.md says why each value)."""

    # Daily runs score the predictions whose targets ended in the last ``window_days`` before as_of.
    score_schedules: list[str] = Field(default_factory=lambda: ["daily"])
    window_days: int = Field(7, ge=1, le=60)
    history_retention_days: int = Field(400, ge=70)  # >= churn's 60-day window plus a margin
    min_rows_type: int = Field(20, ge=1)  # fewer scored rows: no degradation verdict for a type
    min_rows_restaurant: int = Field(5, ge=1)
    # Degraded when realised WAPE > backtest WAPE x ratio + margin (chain-wide per type; a single
    # restaurant is noisier and gets the looser pair).
    wape_ratio: float = Field(1.5, ge=1.0)
    wape_margin: float = Field(0.05, ge=0.0)
    restaurant_wape_ratio: float = Field(2.0, ge=1.0)
    restaurant_wape_margin: float = Field(0.10, ge=0.0)
    coverage_drop: float = Field(0.15, gt=0.0, lt=1.0)  # realised 80 % coverage this far below backtest
    # Coverage of a handful of rows is noise (5 of 7 inside happens 15 % of the time at 80 %).
    min_rows_coverage: int = Field(30, ge=1)
    # Input drift: median open-day orders of the last volume_recent_days vs the volume_baseline_days
    # before them, outside [1/volume_ratio, volume_ratio].
    volume_recent_days: int = Field(7, ge=3)
    volume_baseline_days: int = Field(28, ge=7)
    volume_ratio: float = Field(1.3, gt=1.0)
    menu_new_share: float = Field(0.2, gt=0.0, le=1.0)  # share of active items added in the recent days
    report: bool = True  # write the HTML run report into the model store after each run


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
