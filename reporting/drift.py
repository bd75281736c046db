"""Drift and degradation alerts: when to stop trusting a model, and which models to retrain.

Two kinds, both pure functions of frames (no connection):

- **degradation**: realised accuracy (``models.accuracy.score``) of a type, chain-wide or at one
  restaurant, is worse than the backtest figure of the models that made the predictions by more
  than a documented margin: WAPE above ``ratio x backtest + margin``, or 80 % coverage more than
  ``coverage_drop`` below the backtest's. A restaurant is noisier than the chain (one festival
  day moves its week), so it has its own, looser, ratio and margin.
- **input drift**: the inputs moved, whatever the errors say yet: a restaurant's order volume
  (median orders per open local day of the recent days against the baseline days before them,
  medians so one spike or holiday does not count) or its menu (a large share of the active items
  added recently).

Each alert names the types to retrain: the degraded type itself; every demand type for order
volume; item demand for menu changes. The scoring step retires those types' registered models,
so the next run's fallback chain cannot reuse a model fitted before the change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from core.settings import AccuracySettings
from models.accuracy import ALL, finite_or_none

DEMAND_TYPES = ("demand_hourly", "demand_daily", "item_demand_daily")
RETRAIN_ON_INPUT = {"order_volume": DEMAND_TYPES, "menu_change": ("item_demand_daily",)}
# Types whose models come from a backtest, so a registry figure exists to compare with.
MODEL_TYPES = frozenset(DEMAND_TYPES)


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds (defaults = ``AccuracySettings``'s; docs/accuracy.md says why).

    Args:
        min_rows_type, min_rows_restaurant: fewer scored rows give no verdict.
        wape_ratio, wape_margin: chain-wide degradation when WAPE > backtest x ratio + margin.
        restaurant_wape_ratio, restaurant_wape_margin: the same for one restaurant.
        coverage_drop: degradation when 80 % coverage < backtest coverage - coverage_drop.
        min_rows_coverage: fewer rows with an interval give no coverage verdict (binomial noise).
        volume_recent_days, volume_baseline_days: local days compared (recent vs the ones before).
        volume_ratio: drift when the recent median / baseline median leaves [1/ratio, ratio].
        menu_new_share: drift when items added in the recent days are this share of active items.
    """

    min_rows_type: int = 20
    min_rows_restaurant: int = 5
    wape_ratio: float = 1.5
    wape_margin: float = 0.05
    restaurant_wape_ratio: float = 2.0
    restaurant_wape_margin: float = 0.10
    coverage_drop: float = 0.15
    min_rows_coverage: int = 30
    volume_recent_days: int = 7
    volume_baseline_days: int = 28
    volume_ratio: float = 1.3
    menu_new_share: float = 0.2

    @classmethod
    def from_settings(cls, settings: AccuracySettings) -> "DriftPolicy":
        """Take every field of the same name from ``settings`` (an ``AccuracySettings``)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)})


@dataclass(frozen=True)
class Alert:
    kind: str  # "degradation" or "input_drift"
    signal: str  # "wape", "coverage", "order_volume", "menu_change"
    prediction_type: str | None
    restaurant_id: int | None
    observed: float
    reference: float
    threshold: float
    retrain: tuple[str, ...]
    message: str

    def as_dict(self) -> dict:
        out = asdict(self)
        out["retrain"] = list(self.retrain)
        for k in ("observed", "reference", "threshold"):
            out[k] = round(float(out[k]), 4) if out[k] is not None and math.isfinite(out[k]) else None
        return out


def degradation_alerts(accuracy: pd.DataFrame, policy: DriftPolicy = DriftPolicy()) -> list[Alert]:
    """Alerts for types (chain-wide) and restaurants doing worse than their backtest.

    Args:
        accuracy: ``models.accuracy.score`` output (only the "all" horizon rows are judged: the
            backtest figure pools its horizons the same way).
        policy: thresholds.
    """
    alerts: list[Alert] = []
    if accuracy is None or accuracy.empty:
        return alerts
    rows = accuracy[accuracy["horizon"] == ALL]
    for r in rows.itertuples(index=False):
        chain = r.restaurant_id is None or (isinstance(r.restaurant_id, float) and math.isnan(r.restaurant_id))
        rid = None if chain else int(r.restaurant_id)
        where = "chain-wide" if chain else f"restaurant {rid}"
        min_rows = policy.min_rows_type if chain else policy.min_rows_restaurant
        if r.n < min_rows:
            continue
        ratio, margin = (policy.wape_ratio, policy.wape_margin) if chain else (
            policy.restaurant_wape_ratio, policy.restaurant_wape_margin)
        if finite_or_none(r.wape) is not None and finite_or_none(r.backtest_wape) is not None:
            limit = r.backtest_wape * ratio + margin
            if r.wape > limit:
                alerts.append(Alert(
                    "degradation", "wape", r.prediction_type, rid, float(r.wape), float(r.backtest_wape), float(limit),
                    (r.prediction_type,),
                    f"{r.prediction_type} {where}: realised WAPE {r.wape:.3f} over {r.n} predictions exceeds "
                    f"backtest {r.backtest_wape:.3f} x {ratio:g} + {margin:g} = {limit:.3f}; retrain",
                ))
        if finite_or_none(r.coverage80) is not None and finite_or_none(r.backtest_coverage80) is not None and r.n_interval >= max(min_rows, policy.min_rows_coverage):
            floor = r.backtest_coverage80 - policy.coverage_drop
            if r.coverage80 < floor:
                alerts.append(Alert(
                    "degradation", "coverage", r.prediction_type, rid, float(r.coverage80),
                    float(r.backtest_coverage80), float(floor), (r.prediction_type,),
                    f"{r.prediction_type} {where}: realised 80 % interval coverage {r.coverage80:.2f} is below "
                    f"backtest {r.backtest_coverage80:.2f} - {policy.coverage_drop:g}; retrain",
                ))
    return alerts


def volume_alerts(daily: pd.DataFrame, last_day: dict[int, pd.Timestamp], policy: DriftPolicy = DriftPolicy()) -> list[Alert]:
    """Order-volume drift per restaurant.

    Args:
        daily: restaurant_id, local_date (naive local midnight), orders (days without orders
            absent: they count as closed, not as zero demand).
        last_day: restaurant id -> last complete local date before the run's as_of.
        policy: recent/baseline days and the ratio.
    """
    alerts: list[Alert] = []
    for rid, last in sorted(last_day.items()):
        mine = daily[(daily["restaurant_id"] == rid) & (daily["orders"] > 0)] if len(daily) else daily
        recent_start = last - pd.Timedelta(days=policy.volume_recent_days - 1)
        base_start = recent_start - pd.Timedelta(days=policy.volume_baseline_days)
        recent = mine[(mine["local_date"] >= recent_start) & (mine["local_date"] <= last)]["orders"]
        base = mine[(mine["local_date"] >= base_start) & (mine["local_date"] < recent_start)]["orders"]
        if len(recent) < max(3, policy.volume_recent_days // 2) or len(base) < policy.volume_baseline_days // 2:
            continue  # too few open days to tell a shift from a closure
        r_med, b_med = float(np.median(recent)), float(np.median(base))
        if b_med <= 0:
            continue
        ratio = r_med / b_med
        if ratio > policy.volume_ratio or ratio < 1.0 / policy.volume_ratio:
            alerts.append(Alert(
                "input_drift", "order_volume", None, int(rid), ratio, 1.0, policy.volume_ratio,
                RETRAIN_ON_INPUT["order_volume"],
                f"restaurant {rid}: median orders per open day {r_med:.0f} over the last "
                f"{policy.volume_recent_days} days vs {b_med:.0f} over the {policy.volume_baseline_days} before "
                f"(x{ratio:.2f}, limit x{policy.volume_ratio:g} either way); demand models retrain",
            ))
    return alerts


def menu_alerts(items: pd.DataFrame, as_of: pd.Timestamp, policy: DriftPolicy = DriftPolicy()) -> list[Alert]:
    """Menu drift per restaurant: many active items added in the recent days.

    Args:
        items: restaurant_id, created_at (UTC), is_active (``features.items.menu_items``).
        as_of: the run's instant; items created after it do not exist yet.
    """
    alerts: list[Alert] = []
    if items is None or items.empty:
        return alerts
    since = as_of - pd.Timedelta(days=policy.volume_recent_days)
    live = items[items["is_active"].astype(bool) & (items["created_at"] < as_of)]
    for rid, g in live.groupby("restaurant_id"):
        new = int((g["created_at"] >= since).sum())
        share = new / len(g) if len(g) else 0.0
        if new and share >= policy.menu_new_share:
            alerts.append(Alert(
                "input_drift", "menu_change", None, int(rid), share, 0.0, policy.menu_new_share,
                RETRAIN_ON_INPUT["menu_change"],
                f"restaurant {rid}: {new} of {len(g)} active menu items were added in the last "
                f"{policy.volume_recent_days} days ({share:.0%} >= {policy.menu_new_share:.0%}); item demand retrains",
            ))
    return alerts


def retrain_types(alerts: list[Alert]) -> list[str]:
    """Types with a backtested model that some alert asks to retrain, sorted."""
    return sorted({t for a in alerts for t in a.retrain if t in MODEL_TYPES})


__all__ = ["DriftPolicy", "Alert", "degradation_alerts", "volume_alerts", "menu_alerts", "retrain_types",
           "DEMAND_TYPES", "RETRAIN_ON_INPUT"]
