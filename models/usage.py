"""Daily usage forecasts per inventory item: from menu-item demand through the recipes, or from
the item's own consumption history, chosen per item by a short backtest.

Formulas (docs/inventory.md has the full page):

* Recipe usage (``RecipeUsageForecaster``, the default): each menu item's daily units (level x
  weekday forecast of units sold) times its ``menu_recipeingredient`` quantities, summed per
  ingredient, times the ingredient's portioning = (recorded consumption + waste) / recipe-implied
  use over the history, clipped to [0.5, 2] (days it had run out are left out): kitchens
  over-portion, trim and spill.
* Own-history usage (``UsageForecaster``, the fallback): ``level x weekday[w] x (1 + waste_ratio)``;
  ``weekday`` is the restaurant's weekday profile pooled over its items (every ingredient follows
  the same guests); ``level`` is the item's de-seasonalised mean over its last ``level_days`` open
  days. Closed days (no consumption at all in the restaurant) are left out of every statistic, and
  so are unusual days (``unusual_days``: the whole restaurant at over twice or under half its usual
  activity, a one-off event that would move the 28-day level for four weeks).
* ``usage_forecast`` backtests both on the last ``USAGE_HOLDOUT_DAYS`` and keeps, per item, the
  recipes unless the own history did strictly better on 7-day totals (what a stockout day depends
  on); per-day sd = the chosen method's backtest coefficient of variation x the day's mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.inventory_frames import InventoryFeatures


@dataclass
class UsageForecaster:
    """Weekday-profile x level forecast of a daily series (module docstring): an inventory item's
    own usage, or a menu item's units sold (``key``/``value`` name the columns)."""

    level_days: int = 28
    min_open_days: int = 7
    key: str = "inventory_item_id"
    value: str = "consumption"
    waste: str | None = "waste"  # column added on top of value (ratio to it); None: no waste
    # a restaurant-day at more than this multiple of its usual activity, or less than its inverse,
    # is not what the next days will be like (a one-off event, a half-closed day); 0: keep every day
    unusual_ratio: float = 2.0

    name = "usage_weekday_level"

    def fit(self, usage: pd.DataFrame) -> "UsageForecaster":
        """Learn from a complete daily grid: ``key``, restaurant_id, ds, ``value`` (and ``waste``),
        open (item units, or menu units, per local day). Days whose whole restaurant was far off
        its usual activity (``unusual_days``) are left out of the weekday profile and the level."""
        key, value = self.key, self.value
        hist = usage[usage["open"].astype(bool)].copy()
        hist["w"] = hist["ds"].dt.day_of_week
        item_mean = hist.groupby(key)[value].transform("mean")
        hist["norm"] = np.where(item_mean > 0, hist[value] / item_mean.replace(0, np.nan), np.nan)
        prof = _weekday_profile(hist)
        if self.unusual_ratio:
            unusual = unusual_days(hist, prof, self.unusual_ratio)
            if unusual.any():
                hist = hist[~unusual]
                prof = _weekday_profile(hist)
        self.weekday_ = prof
        hist["f"] = _weekday_factor(prof, hist["restaurant_id"], hist["w"])
        hist["f"] = hist["f"].where(hist["f"] > 0, 1.0)
        hist = hist.sort_values("ds")
        recent = hist.groupby(key).tail(self.level_days)
        level = (recent[value] / recent["f"]).groupby(recent[key]).mean()
        fitted = recent[key].map(level) * recent["f"]
        rel = (recent[value] - fitted) / fitted.where(fitted > 0)
        cv = rel.groupby(recent[key]).std().fillna(0.5).clip(0.05, 2.0)
        if self.waste and self.waste in hist.columns:
            totals = hist.groupby(key)[[value, self.waste]].sum()
            waste_ratio = (totals[self.waste] / totals[value].where(totals[value] > 0)).fillna(0.0).clip(0, 1)
        else:
            waste_ratio = pd.Series(0.0, index=level.index)
        n_open = hist.groupby(key).size()
        self.items_ = pd.DataFrame({"level": level, "cv": cv, "waste_ratio": waste_ratio, "open_days": n_open}).fillna(
            {"level": 0.0, "cv": 0.5, "waste_ratio": 0.0, "open_days": 0}
        )
        return self

    def predict(self, items: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
        """Daily mean and sd.

        Args:
            items: ``key``, restaurant_id.
            future: restaurant_id, ds (naive local date), target_start, remaining_share.
        Returns:
            ``key``, ds, target_start, mean, sd (units per day; the first day scaled by
            remaining_share), enough_history.
        """
        key = self.key
        out = items[[key, "restaurant_id"]].merge(future, on="restaurant_id")
        f = _weekday_factor(self.weekday_, out["restaurant_id"], out["ds"].dt.day_of_week)
        st = self.items_.reindex(out[key])
        base = st["level"].fillna(0.0).to_numpy() * f * (1 + st["waste_ratio"].fillna(0.0).to_numpy())
        out["mean"] = base * out["remaining_share"].to_numpy()
        out["sd"] = out["mean"] * st["cv"].fillna(0.5).to_numpy()
        out["enough_history"] = st["open_days"].fillna(0).to_numpy() >= self.min_open_days
        return out[[key, "ds", "target_start", "mean", "sd", "enough_history"]]


def _weekday_profile(hist: pd.DataFrame) -> pd.DataFrame:
    """Per restaurant (rows) and weekday (columns 0-6): the mean of its items' values relative to
    their own means (``norm``), scaled to average 1 over the week."""
    prof = hist.dropna(subset=["norm"]).groupby(["restaurant_id", "w"])["norm"].mean().unstack()
    prof = prof.reindex(columns=range(7)).fillna(1.0)
    return prof.div(prof.mean(axis=1).replace(0, 1.0), axis=0)


def unusual_days(hist: pd.DataFrame, prof: pd.DataFrame, ratio: float, min_items: int = 5) -> pd.Series:
    """Rows on restaurant-days whose activity (the mean over its items of value / the item's mean,
    over the weekday factor) is above ``ratio`` times, or below 1 / ``ratio`` of, the restaurant's
    median day. Why: the level is a 28-day mean, and one day of a street festival at 3x the usual
    sales raised it by 7 % for four weeks (a planted spike on the synthetic chain put the usage
    forecast 15-30 % above the next days' use and P(out) too high; docs/inventory.md, issue 26,
    calibration). Judged over the whole restaurant (at least ``min_items`` items that day), so a
    slow item's lumpy day is not unusual."""
    f = _weekday_factor(prof, hist["restaurant_id"], hist["w"])
    rel = hist["norm"].to_numpy(float) / np.where(f > 0, f, 1.0)
    rest = hist["restaurant_id"].to_numpy(np.int64)
    # one integer per restaurant-day (local days since 1970 fit in 20 bits)
    key = rest * (1 << 20) + hist["ds"].to_numpy().astype("datetime64[D]").astype(np.int64)
    day_of_row, day_key = pd.factorize(key)
    ok = np.isfinite(rel)
    n = np.bincount(day_of_row[ok], minlength=len(day_key))
    day = np.bincount(day_of_row[ok], weights=rel[ok], minlength=len(day_key)) / np.maximum(n, 1)
    day = pd.Series(np.where(n >= min_items, day, np.nan))
    typical = day.groupby(np.asarray(day_key) >> 20).transform("median").to_numpy()
    r = np.where(typical > 0, day.to_numpy() / np.where(typical > 0, typical, 1.0), 1.0)
    bad = (r > ratio) | (r < 1.0 / ratio)  # NaN (too few items) compares False
    return pd.Series(bad[day_of_row], index=hist.index)


def _weekday_factor(prof: pd.DataFrame, restaurant_ids: pd.Series, weekdays: pd.Series) -> np.ndarray:
    """The restaurant's weekday factor per row (1 for a restaurant without a profile)."""
    stacked = prof.stack()
    idx = pd.MultiIndex.from_arrays([restaurant_ids.to_numpy(), weekdays.to_numpy()])
    return stacked.reindex(idx).fillna(1.0).to_numpy(dtype=float)


@dataclass
class RecipeUsageForecaster:
    """An ingredient's usage from the menu items that need it: item demand x recipe x portioning.

    ``usage_i(day) = portioning_i x sum_j units_j(day) x quantity_per_unit_ij``, with units_j the
    menu item's level x weekday forecast (``UsageForecaster`` on units sold) and ``portioning_i``
    = ``actual_use`` (consumption + waste + stock counts found missing) / recipe-implied use over
    the history: real kitchens over-portion, trim and spill; clipped to [0.5, 2], except beyond
    [1/10, 10], where the recipe evidently counts in another unit than the stock (grams vs
    kilograms) and the ratio is that conversion, kept whole. An item whose use nobody books
    (neither consumption nor a count losing stock) gets portioning 1, the recipes' theory. Days on which the recipes imply use but nothing was recorded
    (the item had run out) are left out of the ratio. Discontinued menu items get no forecast.
    """

    level_days: int = 28
    min_open_days: int = 7
    min_ratio: float = 0.5
    max_ratio: float = 2.0
    unit_gap: float = 10.0  # a ratio beyond [1/unit_gap, unit_gap] is a unit conversion, not portioning

    name = "recipe_x_item_demand"

    def fit(self, menu_units: pd.DataFrame, recipes: pd.DataFrame, usage: pd.DataFrame) -> "RecipeUsageForecaster":
        """Args:
            menu_units: ``features.inventory_frames.menu_unit_grid`` (menu units per local day).
            recipes: ``features.inventory.recipe_lines`` (item units per menu unit).
            usage: ``features.inventory_frames.usage_grid`` (item units per local day).
        """
        self.recipes_ = recipes[["menu_item_id", "inventory_item_id", "quantity_per_unit"]]
        self.menu_ = UsageForecaster(self.level_days, self.min_open_days, key="menu_item_id", value="units", waste=None)
        self.menu_.fit(menu_units)
        self.active_ = menu_units.loc[menu_units["is_active"].astype(bool), ["menu_item_id", "restaurant_id"]].drop_duplicates()
        implied = recipe_implied(menu_units, self.recipes_)
        hist = usage[usage["open"].astype(bool)].merge(implied, on=["inventory_item_id", "ds"], how="left")
        hist["implied"] = hist["implied"].fillna(0.0)
        hist = hist[~ran_out(hist)]
        hist = hist.assign(used=actual_use(hist),
                           books=hist["records_use"].astype(bool) if "records_use" in hist else True,
                           counted=hist["adjusted"] if "adjusted" in hist else 0.0)
        tot = hist.groupby("inventory_item_id").agg(used=("used", "sum"), implied=("implied", "sum"),
                                                    books=("books", "any"), counted=("counted", "sum"))
        ratio = tot["used"] / tot["implied"].where(tot["implied"] > 0)
        # an item booked by nobody (no consumption, no count losing stock) is used as the recipes say
        ratio[~tot["books"] & (tot["counted"] <= 0) & (tot["implied"] > 0)] = 1.0
        ratio = ratio.dropna()
        # recipe in grams, stock in kilograms (or portions vs packs): the ratio is the conversion
        # and is kept whole; clipped, it would put such an item's use 500x off
        converted = (ratio < 1.0 / self.unit_gap) | (ratio > self.unit_gap)
        self.ratio_ = ratio.clip(self.min_ratio, self.max_ratio).where(~converted, ratio)
        return self

    def predict(self, items: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
        """Daily mean usage per inventory item (item units; first day scaled by remaining_share).

        Returns inventory_item_id, ds, mean, menu_items (how many active menu items feed it);
        items without an active recipe link or a ratio are absent.
        """
        menu = self.active_[self.active_["restaurant_id"].isin(items["restaurant_id"])]
        units = self.menu_.predict(menu, future)
        use = units.merge(self.recipes_, on="menu_item_id")
        use["q"] = use["mean"] * use["quantity_per_unit"]
        out = use.groupby(["inventory_item_id", "ds"]).agg(mean=("q", "sum"), menu_items=("menu_item_id", "nunique")).reset_index()
        out = out[out["inventory_item_id"].isin(self.ratio_.index) & out["inventory_item_id"].isin(items["inventory_item_id"])]
        out["mean"] = out["mean"] * out["inventory_item_id"].map(self.ratio_).to_numpy()
        return out


def recipe_implied(menu_units: pd.DataFrame, recipes: pd.DataFrame) -> pd.DataFrame:
    """What the recipes say each inventory item used per local day: sum of units sold x quantity.

    Returns inventory_item_id, ds, implied (item units)."""
    m = menu_units[["menu_item_id", "ds", "units"]].merge(recipes, on="menu_item_id")
    m["implied"] = m["units"] * m["quantity_per_unit"]
    return m.groupby(["inventory_item_id", "ds"], as_index=False)["implied"].sum()


def ran_out(frame: pd.DataFrame) -> pd.Series:
    """Days on which the recipes imply use but nothing was recorded: the item had run out, so the
    day says how much stock there was, not how much the kitchen would have used. Not for an item
    that records no consumption at all (``records_use`` False): it is counted, not empty."""
    out = (frame["implied"] > 0) & (frame["consumption"] <= 0)
    if "records_use" in frame:
        out &= frame["records_use"].astype(bool)
    return out


def actual_use(frame: pd.DataFrame) -> pd.Series:
    """What an item really lost to the kitchen per row: consumption + waste + stock that counts
    found missing (``adjusted``; found stock offsets it). Real kitchens under-book use; the
    counts are the standard "actual vs theoretical" check of restaurant inventory."""
    used = frame["consumption"] + frame["waste"]
    return used + frame["adjusted"] if "adjusted" in frame else used


USAGE_HOLDOUT_DAYS = 14
RECIPE = RecipeUsageForecaster.name
OWN = "own_usage_history"


def usage_forecast(features: InventoryFeatures, holdout_days: int = USAGE_HOLDOUT_DAYS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily usage mean and sd per inventory item, recipe-based or own-history, chosen per item.

    Backtest: both forecasters are fitted on the history before the last ``holdout_days`` and
    scored on them (actual = ``actual_use`` on open days; days the item had run out are
    left out). An item that books no consumption (counted only) uses the recipes when linked. The error is the mean absolute error of 7-day totals, what a stockout date depends
    on. An item uses the recipes unless its own history did better (ties go to the recipes) and
    falls back to its own history without a recipe link or menu-item history. The per-day sd is
    the chosen method's backtest residual sd relative to its forecast (a coefficient of
    variation) times the day's mean: an out-of-sample interval, not the in-sample fit.

    Args:
        features: ``features.inventory_frames.InventoryFeatures``.
    Returns:
        (forecast, choice): forecast = inventory_item_id, ds, target_start, mean, sd,
        enough_history, usage_model (item units per local day); choice = per item usage_model,
        backtest errors (recipe_error, own_error, item units per 7 days), cv.
    """
    usage, items, future = features.usage, features.items, features.future
    menu_units, recipes = features.menu_units, features.recipes
    have_recipes = menu_units is not None and recipes is not None and len(menu_units) and len(recipes)
    last = usage.groupby("restaurant_id")["ds"].transform("max") if len(usage) else pd.Series(dtype="datetime64[ns]")
    back = (last - usage["ds"]).dt.days if len(usage) else pd.Series(dtype=float)
    train, test = usage[back >= holdout_days], usage[back < holdout_days]
    errors = pd.DataFrame(index=pd.Index(items["inventory_item_id"], name="inventory_item_id"))
    resid = {}
    if len(train) and len(test):
        test_future = test[["restaurant_id", "ds"]].drop_duplicates().assign(target_start=pd.NaT, remaining_share=1.0)
        actual = test.assign(actual=actual_use(test))
        if have_recipes:
            mlast = menu_units["restaurant_id"].map(last.groupby(usage["restaurant_id"]).max())
            mback = (mlast - menu_units["ds"]).dt.days
            implied = recipe_implied(menu_units, recipes)
            actual = actual.merge(implied, on=["inventory_item_id", "ds"], how="left").fillna({"implied": 0.0})
            actual = actual[~ran_out(actual)]
        actual = actual[actual["open"].astype(bool)]
        own = UsageForecaster().fit(train).predict(items, test_future)[["inventory_item_id", "ds", "mean"]]
        preds = {OWN: own}
        if have_recipes:
            rec = RecipeUsageForecaster().fit(menu_units[mback >= holdout_days], recipes, train)
            preds[RECIPE] = rec.predict(items, test_future)[["inventory_item_id", "ds", "mean"]]
        for name, pred in preds.items():
            j = actual[["inventory_item_id", "ds", "actual"]].merge(pred, on=["inventory_item_id", "ds"], how="inner")
            if j.empty:
                continue
            j["block"] = (j["ds"] - j["ds"].min()).dt.days // 7
            blocks = j.groupby(["inventory_item_id", "block"])[["actual", "mean"]].sum()
            errors[f"{name}_error"] = (blocks["actual"] - blocks["mean"]).abs().groupby(level=0).mean()
            r = j["actual"] - j["mean"]
            resid[name] = (r.groupby(j["inventory_item_id"]).std() / j.groupby("inventory_item_id")["mean"].mean().where(lambda m: m > 0)).clip(0.05, 2.0)

    own_full = UsageForecaster().fit(usage).predict(items, future)
    own_full["usage_model"] = OWN
    out = own_full
    if have_recipes:
        rec_full = RecipeUsageForecaster().fit(menu_units, recipes, usage).predict(items, future)
        rec_err = errors.get(f"{RECIPE}_error", pd.Series(dtype=float))
        own_err = errors.get(f"{OWN}_error", pd.Series(dtype=float))
        linked = set(rec_full["inventory_item_id"])
        # an item whose use is never booked has no own history to prefer: the recipes it is
        unbooked = set(usage.loc[~usage["records_use"].astype(bool), "inventory_item_id"]) if "records_use" in usage else set()
        use_recipe = {
            i for i in linked
            if i in unbooked
            or not (pd.notna(own_err.get(i)) and pd.notna(rec_err.get(i)) and own_err.get(i) < rec_err.get(i))
        }
        rec_rows = out["inventory_item_id"].isin(use_recipe)
        merged = out.loc[rec_rows, ["inventory_item_id", "ds"]].merge(rec_full[["inventory_item_id", "ds", "mean"]], on=["inventory_item_id", "ds"], how="left")
        out.loc[rec_rows, "mean"] = merged["mean"].fillna(0.0).to_numpy()  # first day already scaled
        out.loc[rec_rows, "usage_model"] = RECIPE
    choice = out.groupby("inventory_item_id")["usage_model"].first().to_frame()
    choice = choice.join(errors, how="left")
    cv = pd.Series(0.5, index=choice.index)
    for name, r in resid.items():
        m = choice["usage_model"] == name
        cv[m] = r.reindex(choice.index[m]).fillna(0.5).to_numpy()
    choice["cv"] = cv
    out["sd"] = out["mean"] * out["inventory_item_id"].map(cv).to_numpy()
    return out, choice.reset_index()
