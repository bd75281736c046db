"""The model's reorder advice as a replay policy: ``ModelInputs`` (what the model knows each morning
that no policy changes, from the replica as it stood then) and ``ModelPolicy`` (``decide_item`` on
the replay's own stock, batches and orders in transit)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.replay_chain import morning
from bench.replay_world import NEVER, State, World

@dataclass
class ModelInputs:
    """Per replay day, what the model knows that no policy changes: as_of, per item id the usage
    forecast (mean, sd per day from that local day), the supplier lead-time estimates, and the
    restaurants' usage midpoint hours."""

    as_of: list
    usage: list  # per day: {item id: (mean array, sd array)}
    lead: list  # per day: SupplierLeadTime.estimates_
    items: pd.DataFrame
    restaurants: pd.DataFrame
    midpoint: list = field(default_factory=list)


def _orders_frame(world: World, state: State, inputs: ModelInputs, ordered_at0: dict) -> pd.DataFrame:
    """The policy's orders in transit as ``open_purchase_orders`` would read them."""
    rows = []
    for k, (i, q, o, _a) in enumerate(state.pending):
        at = ordered_at0.get((i, o, q)) if o < 0 else inputs.as_of[o]
        if at is None:
            at = inputs.as_of[0] + pd.Timedelta(days=o)
        rows.append((hash((int(world.restaurant_id[i]), int(world.supplier_id[i]), o)) & 0x7FFFFFFF,
                     int(world.supplier_id[i]), int(world.item_id[i]), float(q), at))
    frame = pd.DataFrame(rows, columns=["purchase_order_id", "supplier_id", "inventory_item_id", "quantity", "ordered_at"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], utc=True)
    frame["expected_at"] = pd.NaT
    frame["expected_at"] = pd.to_datetime(frame["expected_at"], utc=True)
    return frame


class ModelPolicy:
    """Each morning, ``models.reorder.decide_item`` on the replay's own stock, batches and orders
    in transit; orders the advised quantity when the order-by date is today. With ``alarms`` it
    also keeps P(out by day k) (k < ``alarm_days``) and the expected lead time per day and item
    (``p_out``, ``lead``), from the arrival scenarios of the orders in transit, like the daily run."""

    def __init__(self, inputs: ModelInputs, settings, ordered_at0: dict | None = None, *, alarms: bool = False,
                 alarm_days: int = 21, paths: int = 1000, order: bool = True, lead_distribution: bool = True):
        self.inputs, self.settings, self.alarms, self.alarm_days, self.paths = inputs, settings, alarms, alarm_days, paths
        self.lead_distribution = lead_distribution
        self.ordered_at0 = ordered_at0 or {}
        self.order = order
        self.p_out: dict = {}
        self.lead_days: dict = {}
        self.position: dict = {}
        self.rop: dict = {}
        it = inputs.items.set_index("inventory_item_id")
        self._item = it

    def __call__(self, world: World, state: State) -> np.ndarray | None:
        from models.lead_time import (
            QUANTILE_COLUMNS,
            SHIFT_COLUMNS,
            lead_draws_now,
            supplier_quantiles,
            supplier_shifts,
            weekday_shift,
        )
        from models.reorder import decide_item
        from models.stock_projection import arrival_days, arrival_scenarios

        d = state.day
        inp = self.inputs
        as_of, lead, use = inp.as_of[d], inp.lead[d], inp.usage[d]
        if not self.lead_distribution:  # the lognormal of before, for comparison
            lead = lead.drop(columns=QUANTILE_COLUMNS + SHIFT_COLUMNS, errors="ignore")
        today = world.start + pd.Timedelta(days=d)
        oo = _orders_frame(world, state, inp, self.ordered_at0)
        arr_days = arrival_days(oo, lead, inp.restaurants, inp.items, as_of)
        horizon = max((len(m) for m, _ in use.values()), default=0)
        arr = {}
        for iid, ds, q in zip(arr_days["inventory_item_id"], arr_days["ds"], arr_days["quantity"]):
            k = max(int((pd.Timestamp(ds) - today).days), 0)
            if k < horizon:
                arr.setdefault(int(iid), np.zeros(horizon))[k] += q
        scen = {}
        if (self.alarms or self.lead_distribution) and len(oo):
            rest_of = inp.items.set_index("inventory_item_id")["restaurant_id"]
            tz = inp.restaurants.set_index("id")["timezone"]
            ids = [int(x) for x in oo["inventory_item_id"].unique()]
            mid = inp.midpoint[d] if inp.midpoint else {}
            scen = arrival_scenarios(oo, lead, {i: tz[rest_of[i]] for i in ids}, {i: today for i in ids},
                                     {i: mid.get(int(rest_of[i]), 23.0) for i in ids}, as_of, self.alarm_days)
        shapes = supplier_quantiles(lead) if self.lead_distribution else {}
        shifts = supplier_shifts(lead) if self.lead_distribution else {}
        draws = {}
        lead_by = lead.set_index("supplier_id") if len(lead) else pd.DataFrame()
        default_L = float(lead["expected_days"].median()) if len(lead) else 2.0
        default_sL = float(lead["sd_days"].median()) if len(lead) else 0.5
        q = np.zeros(world.n)
        for i in range(world.n):
            iid = int(world.item_id[i])
            if iid not in use:
                continue
            mean, sd = use[iid]
            sid = int(world.supplier_id[i])
            if sid in lead_by.index and np.isfinite(lead_by.loc[sid, "expected_days"]):
                L, sL = float(lead_by.loc[sid, "expected_days"]), float(lead_by.loc[sid, "sd_days"])
            else:
                L, sL = default_L, default_sL
            # the order placed now must last until the next review's order lands: that one's weekday
            nxt = (today + pd.Timedelta(days=math.ceil(self.settings.review_period_days))).weekday()
            shift = weekday_shift(shifts, sid, nxt)
            L, L_today = max(L + shift, 0.0), max(L + weekday_shift(shifts, sid, today.weekday()), 0.0)
            lots = [(e - d, qq) for e, qq in state.lots[i] if e < NEVER]
            on_hand = float(sum(qq for _, qq in state.lots[i]))
            row = self._item.loc[iid]
            a = arr.get(iid, np.zeros(len(mean)))
            shelf = float(world.shelf[i]) if world.shelf[i] > 0 else None
            _, p, plan = decide_item(
                on_hand, lots, mean, sd, a, shelf, L, sL, self.settings,
                unit_cost=float(row["unit_cost"] or 0.0),
                par_level=None if pd.isna(row["par_level"]) else float(row["par_level"]),
                min_order_quantity=None if pd.isna(row["min_order_quantity"]) else float(row["min_order_quantity"]),
                whole_units=row["unit"] == "each", scenarios=scen.get(iid) or [(1.0, a[: self.alarm_days])],
                seed=iid, p_out=self.alarms, p_out_days=self.alarm_days, paths=self.paths,
                lead_draws=draws.setdefault(sid, lead_draws_now(shapes, sid, shift=shift)) if shapes else None,
            )
            if self.alarms:
                self.p_out[(d, i)] = p
                self.lead_days[(d, i)] = L_today  # the notice an order placed this morning needs
                self.position[(d, i)] = plan["position"]
                self.rop[(d, i)] = plan["reorder_point"]
            if self.order and plan["order_by_index"] == 0 and plan["quantity"] > 0:
                q[i] = plan["quantity"]
        return q if self.order else None


def world_lead_frames(lead_history, day: int, start: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What ``features.suppliers.supplier_history`` would read as of the morning of ``day`` in the
    world's own delivery history (``WorldLeadHistory``): the lead-time history with its quantiles
    and weekday medians, and the recent orders."""
    from features.suppliers import LEAD_QUANTILES, weekday_columns

    hist, recent = lead_history.frames(day, LEAD_QUANTILES)
    wd = weekday_columns(lead_history.weekday_medians(day, start.weekday()))
    return hist.merge(wd, on="supplier_id", how="left"), recent


def model_inputs(reader, restaurants: pd.DataFrame, settings, start: pd.Timestamp, days: int,
                 lead_history=None) -> ModelInputs:
    """``ModelInputs`` for each replay morning, from the replica as it stood then (SQL once a day:
    the usage forecast's features and the suppliers' lead-time history). With ``lead_history``
    (``bench.replay_leadtimes.WorldLeadHistory``) the lead times are learnt from the world's own
    deliveries instead of the replica's."""
    from datetime import datetime, timezone
    from pathlib import Path

    from core.units import Scope
    from features.inventory import inventory_features
    from models.lead_time import SupplierLeadTime
    from models.usage import usage_forecast
    from worker.settings import get_settings

    out = ModelInputs([], [], [], pd.DataFrame(), restaurants.reset_index(drop=True), [])
    for d in range(days):
        as_of = morning(start, d)
        scope = Scope("replay", "daily", as_of, restaurants.reset_index(drop=True), get_settings().forecast,
                      Path("/tmp/rmsml-bench-models"), datetime.now(timezone.utc))
        feats = inventory_features(reader, scope, settings)
        use, _ = usage_forecast(feats)
        use = use.sort_values(["inventory_item_id", "ds"])
        out.as_of.append(as_of)
        out.usage.append({int(i): (g["mean"].to_numpy(float), g["sd"].to_numpy(float)) for i, g in use.groupby("inventory_item_id")})
        hist, recent = ((feats.lead_times, feats.recent_orders) if lead_history is None
                        else world_lead_frames(lead_history, d, start))
        out.lead.append(SupplierLeadTime.from_settings(settings).fit(feats.suppliers, hist, recent).estimates_)
        out.midpoint.append(feats.midpoint_hour or {})
        if d == 0:
            out.items = feats.items
    return out
