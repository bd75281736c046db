"""Items that died: silent for longer than they plausibly go quiet -> forecast 0 as a rule, with
the silent days in the details; back to the model once they sell again; new items still borrow
from their category. Small frames, no database."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.settings import ForecastSettings
from core.units import Scope
from features.demand import decorate
from features.model_frames import DemandHistory, dormant_days
from models.demand import ITEMS
from models.forecasting import forecast

END = pd.Timestamp("2026-06-30")  # last history day
SPEC = replace(ITEMS, candidates=("seasonal_naive", "seasonal_average"))


def _item(sid: int, days: int, sale_every: int, silent: int, units: float = 3.0) -> pd.DataFrame:
    ds = pd.date_range(end=END, periods=days, freq="D")
    back = np.arange(days)[::-1]  # days before END; the last sale is ``silent`` days before it
    y = np.where((back >= silent) & ((back - silent) % sale_every == 0), units, 0.0)
    return pd.DataFrame({"series_id": sid, "ds": ds, "y": y, "closed": False, "outlier": False})


def _features(parts: list[pd.DataFrame], category: dict[int, str]) -> DemandHistory:
    series = pd.DataFrame({"series_id": list(category), "restaurant_id": 1, "category": list(category.values()),
                           "country_code": "GB", "timezone": "Europe/London"})
    series["peer_group"] = "1:" + series["category"]
    history = pd.concat(parts, ignore_index=True)
    ds = pd.date_range(END + pd.Timedelta(days=1), periods=14, freq="D")
    future = pd.concat([pd.DataFrame({"series_id": s, "ds": ds, "target_start": ds.tz_localize("UTC")})
                        for s in category], ignore_index=True)
    return DemandHistory(decorate(history, series), decorate(future, series), series, "day")


def _scope() -> Scope:
    return Scope(run_id="00000000-0000-0000-0000-0000000000d0", schedule="daily",
                 as_of=pd.Timestamp(END + pd.Timedelta(days=1), tz="UTC"),
                 restaurants=pd.DataFrame({"id": [1]}), forecast=ForecastSettings(),
                 model_store=Path(tempfile.mkdtemp(prefix="demand-dormant-")),
                 valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), registry=pd.DataFrame())


def test_dormant_days_measure_silence_against_the_items_own_longest_gap():
    hist = pd.concat([
        _item(1, 120, 1, 0),        # sells daily
        _item(2, 120, 2, 40),       # sold every other day, silent 40 days: dead (limit 28)
        _item(3, 120, 20, 35),      # sells every 20 days, silent 35: its limit is 2 x 20 = 40, alive
        _item(4, 120, 20, 59),      # the same rhythm, silent 59: dead
        _item(5, 60, 1, 60),        # never sold in its 60 days on the menu: dead
        _item(6, 10, 1, 10),        # new, no sale in 10 days: too soon to tell
    ], ignore_index=True)
    dead = dormant_days(hist, floor_days=28, gap_factor=2.0)
    assert set(dead.index) == {2, 4, 5}
    assert dead[2] == 40 and dead[5] == 60


def test_dead_items_are_forecast_zero_new_ones_borrow_and_a_sale_brings_an_item_back():
    cats = {1: "bread", 2: "bread", 3: "bread", 7: "bread", 8: "bread"}
    parts = [_item(1, 120, 1, 0, units=5.0), _item(2, 120, 2, 40, units=8.0), _item(3, 120, 1, 0, units=3.0),
             _item(7, 5, 1, 0, units=2.0)]  # 7: new on the menu, 5 days; 8: on the menu from today
    outcome = forecast(_features(parts, cats), SPEC, _scope(), save=False)
    out = outcome.frame
    dead = out[out["series_id"] == 2]
    assert (dead["yhat"] == 0).all() and (dead["upper"] == 0).all()
    assert (dead["method"] == "rule").all() and (dead["model_name"] == "dormant_rule").all()
    assert (dead["dormant_days"] == 40).all()
    assert any("forecast 0 until they sell again" in m for m in outcome.messages)
    # a new item borrows from its category's live items only (5 and 3 a day -> 4), not from the dead
    # one; with days of its own, towards its own rate, the category counting as 7 days:
    # (5 days x 2 units + 7 x 4) / (5 + 7)
    fresh = out[out["series_id"] == 8]
    assert (fresh["method"] == "average").all() and np.allclose(fresh["yhat"], 4.0)
    new = out[out["series_id"] == 7]
    assert (new["method"] == "average").all()
    assert np.allclose(new["yhat"], (5 * 2.0 + 7 * 4.0) / (5 + 7))
    assert (new["lower"] <= new["yhat"]).all() and (new["yhat"] <= new["upper"]).all()
    assert (out.loc[out["series_id"].isin([1, 3]), "method"] == "model").all()

    # the dead item sells again yesterday: back to the model
    back = _item(2, 120, 2, 40, units=8.0)
    back.loc[back.index[-1], "y"] = 8.0
    parts[1] = back
    again = forecast(_features(parts, cats), SPEC, _scope(), save=False).frame
    revived = again[again["series_id"] == 2]
    assert (revived["method"] == "model").all() and revived["dormant_days"].isna().all()
    assert revived["yhat"].sum() > 0


def test_item_rows_carry_the_dormant_days_in_their_details():
    from prediction_types.demand import DemandInputs, predict_item_demand_daily

    cats = {1: "bread", 2: "bread"}
    feats = _features([_item(1, 120, 1, 0), _item(2, 120, 2, 40)], cats)
    scope = _scope()
    import prediction_types.demand as pd_mod

    orig = pd_mod.ITEMS
    pd_mod.ITEMS = SPEC
    try:
        rows = predict_item_demand_daily(DemandInputs(None, scope, items=feats), scope).rows
    finally:
        pd_mod.ITEMS = orig
    dead = rows[rows["entity_id"] == 2]
    assert all(d["dormant_days"] == 40 for d in dead["details"])
    assert all("dormant_days" not in d for d in rows.loc[rows["entity_id"] == 1, "details"])
