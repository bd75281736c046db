"""Settings groups the lower layers take (forecast, inventory, accuracy policy).

They live here, below ``features``/``models``, so those packages can type the settings they are
handed without importing the worker; ``worker.settings.Settings`` assembles them with the groups
only the worker needs (URLs, brokers, webhooks) and reads the environment.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ForecastSettings(BaseModel):
    demand_daily_horizon_days: int = Field(28, ge=1, le=90)
    demand_hourly_horizon_hours: int = 168
    item_demand_horizon_days: int = 14
    history_days: int = 730
    expires_after_hours: int = 36
    # Days a shard's backtest verdict (chosen model + calibrated intervals) is reused by later runs,
    # which then only refit the chosen model; 0 backtests every run (models.forecasting).
    reselect_days: int = Field(7, ge=0, le=60)


class InventorySettings(BaseModel):
    """Inventory, pricing and anomaly policy (formulas in docs/inventory.md, pricing.md, anomalies.md)."""

    horizon_days: int = Field(14, ge=1, le=60)  # stock_daily rows
    stockout_horizon_days: int = Field(60, ge=14, le=365)  # how far stockout/reorder look
    usage_history_days: int = 56  # consumption history the usage forecast learns from
    service_level: float = Field(0.95, gt=0.5, lt=1.0)  # P(no stockout during a replenishment cycle)
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
