"""The fallback chain every demand type runs: model, previous model, rule, average.

1. ``model``: backtest the candidates on the last weeks (``models.backtest``), refit the best on
   all history, forecast, calibrate its intervals on the backtest residuals, save the artifact
   and hand a registry record (scores of every candidate included) back to the run loop. Within
   ``forecast.reselect_days`` of the shard's last backtest, the run skips the backtest and refits
   the candidate it chose, with its intervals (``models.demand_registry.recent_selection``).
2. ``previous_model``: if step 1 fails, the newest registered artifact of this type from an
   earlier run whose checksum still matches, forecasting from today's history
   (``models.demand_registry.previous_model``).
3. ``rule``: series without a forecast yet but with a week of open history get the seasonal
   average of their own history (too little for a model, enough for a profile).
4. ``average``: the rest (new or all-zero series) get the mean forecast of their peers
   (the chain for restaurants, the category at the restaurant for menu items;
   ``models.demand_rules``, with the zeros before a restaurant opens).
Known closures (``features.model_frames.known_closures``) are then set to zero as a ``rule``.
A series' rows always come from one step, so a reader never mixes methods within a day.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features.model_frames import DemandHistory, dormant_days, known_closures
from models.artifacts import shard_version
from models.backtest import BacktestResult, rolling_origin
from models.blend import LGBMProphetBlend, MeanEnsemble
from models.chain_decision import ChainDecision, chain_decision
from models.demand_registry import AS_OF_FORMAT, previous_model, recent_selection, register
from models.demand_rules import not_open_yet, peer_average, shrink_to_own
from models.intervals import ConformalIntervals
from models.lgbm import GlobalLGBM, PlainLagLGBM
from models.prophet_model import YEARLY_MIN_DAYS, ProphetPerSeries
from models.seasonal import SeasonalAverage, SeasonalNaive
from models.topdown import LGBMTopDownBlend, RestaurantContext, SharedFit, TopDown
from core.units import ModelRecord, Scope

log = logging.getLogger(__name__)

RULE_MIN_OPEN_DAYS = 7


@dataclass(frozen=True)
class TypeSpec:
    """How one prediction type is forecast.

    Args:
        prediction_type: contract name, e.g. "demand_daily".
        slot: "weekday" or "weekday_hour" (seasonal slot of the baselines and features).
        horizon_days: how far the type forecasts (days; 7 for 168 hours).
        candidates: model names competing in the backtest (see ``make_candidate``).
        backtest_folds, fold_step_days: rolling origins and the days between them.
        min_history_days: open days a series needs to be forecast by the model.
        short_series: what a series with less history gets: "rule" (own seasonal average) or
            "average" (peer average: new menu items borrow from their category).
        lgbm: extra GlobalLGBM arguments.
        topdown: extra TopDown arguments (item types).
        plain_lgbm: extra PlainLagLGBM arguments (candidate "lightgbm_plain").
        ensemble: the candidates the "ensemble" candidate averages (``models.blend.MeanEnsemble``);
            the backtest scores it from their fold forecasts, so they must be candidates too.
        restaurant_lgbm: GlobalLGBM arguments of the restaurant orders model under the top-down
            candidates (item types take demand_daily's, see ``models.demand.ITEMS``).
        dormant: (floor days, gap factor) of the dormant rule (``features.model_frames.dormant_days``):
            series silent for longer than that are forecast 0 as a ``rule``; None: no such rule.
        peer_statistic: "mean" or "median" of the peers' forecasts for the ``average`` step (items:
            the median, as a menu's mean is its bestsellers').
        peer_shrink_days: k > 0: a series in the ``average`` step with some days of its own
            history gets the peers' forecast scaled to (its units + k x peer daily mean) /
            (its days + k): its own days count as far as they go, the peers' as k days (0: off).
        prophet: extra ProphetPerSeries arguments (candidate "prophet").
        default: the method the chain uses unless the pooled backtest of every shard shows another
            better by a margin (``models.chain_decision``); None: each shard's backtest selects
            (``models.backtest.select``).
    """

    prediction_type: str
    slot: str
    horizon_days: float
    candidates: tuple[str, ...] = ("seasonal_naive", "seasonal_average", "lightgbm")
    backtest_folds: int = 3
    fold_step_days: int = 7
    min_history_days: int = 28
    short_series: str = "rule"
    lgbm: tuple[tuple[str, object], ...] = ()
    topdown: tuple[tuple[str, object], ...] = ()
    restaurant_lgbm: tuple[tuple[str, object], ...] = ()
    plain_lgbm: tuple[tuple[str, object], ...] = ()
    ensemble: tuple[str, ...] = ()
    prophet_jobs: int = 1
    dormant: tuple[int, float] | None = None
    peer_statistic: str = "mean"
    peer_shrink_days: int = 0
    prophet: tuple[tuple[str, object], ...] = ()
    default: str | None = None

    @property
    def hourly(self) -> bool:
        return self.slot == "weekday_hour"


TOPDOWN = (TopDown.name, LGBMTopDownBlend.name)


def make_candidate(name: str, spec: TypeSpec, context: RestaurantContext | None = None):
    """An unfitted candidate; the top-down ones need the restaurants' daily history (``context``)."""
    if name == MeanEnsemble.name:
        return MeanEnsemble(spec.ensemble, factory=lambda part: make_candidate(part, spec, context))
    if name == "seasonal_naive":
        return SeasonalNaive(season=spec.slot)
    if name == "seasonal_average":
        return SeasonalAverage(season=spec.slot)
    if name == "lightgbm":
        return GlobalLGBM(slot=spec.slot, horizon_days=spec.horizon_days, **dict(spec.lgbm))
    if name == PlainLagLGBM.name:
        return PlainLagLGBM(slot=spec.slot, horizon_days=spec.horizon_days, **dict(spec.plain_lgbm))
    if name == "prophet":
        return ProphetPerSeries(hourly=spec.hourly, n_jobs=spec.prophet_jobs, **dict(spec.prophet))
    if name == LGBMProphetBlend.name:
        return LGBMProphetBlend(
            lgbm={"slot": spec.slot, "horizon_days": spec.horizon_days, **dict(spec.lgbm)},
            prophet={"hourly": spec.hourly, "n_jobs": spec.prophet_jobs, **dict(spec.prophet)},
        )
    if name in TOPDOWN:
        topdown = {"restaurant": {"slot": "weekday", **dict(spec.restaurant_lgbm), "horizon_days": spec.horizon_days},
                   **dict(spec.topdown)}
        if name == TopDown.name:
            return TopDown(context, **topdown)
        return LGBMTopDownBlend(context, lgbm={"slot": spec.slot, "horizon_days": spec.horizon_days,
                                               **dict(spec.lgbm)}, topdown=topdown)
    raise ValueError(f"unknown candidate {name!r}")


@dataclass
class Outcome:
    """Forecast rows (future + yhat, lower, upper, method, model_name, model_version)."""

    frame: pd.DataFrame
    models: list[ModelRecord] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    backtest: BacktestResult | None = None


def open_days(history: pd.DataFrame) -> pd.Series:
    """Distinct open local days per series (any rows of a day not flagged closed)."""
    if history.empty:
        return pd.Series(dtype=float)
    open_rows = history[~history["closed"]]
    return open_rows.groupby("series_id")["ds"].apply(lambda s: s.dt.normalize().nunique())


def forecast(features: DemandHistory, spec: TypeSpec, scope: Scope, *, save: bool = True) -> Outcome:
    """Run the fallback chain for every series of ``features``; never raises for bad series."""
    hist, series = features.history, features.series
    messages = list(features.messages)
    out = features.future.copy()
    for col in ("yhat", "lower", "upper"):
        out[col] = np.nan
    out["method"] = None
    out["model_name"] = None
    out["model_version"] = None
    if out.empty:
        return Outcome(out, [], messages)
    days = open_days(hist)
    totals = hist.groupby("series_id")["y"].sum() if len(hist) else pd.Series(dtype=float)
    dormant = _dormant_step(out, hist, spec, messages)
    sids = series["series_id"][~series["series_id"].isin(dormant.index)]
    seasoned = [int(s) for s in sids if days.get(s, 0) >= spec.min_history_days and totals.get(s, 0) > 0]
    records: list[ModelRecord] = []
    backtest = None
    if seasoned:
        records, backtest = _model_step(out, hist, seasoned, features, spec, scope, messages, save=save)
    _rule_step(out, hist, sids, seasoned, days, totals, spec)
    _peer_step(out, series, seasoned, days, totals, spec, messages)
    # closures known from evidence
    if "holiday_name" in out.columns and len(hist):
        closed = known_closures(hist, out)
        if closed.any():
            out.loc[closed, ["yhat", "lower", "upper"]] = 0.0
            out.loc[closed, ["method", "model_name", "model_version"]] = ["rule", "closure_rule", "rule"]
    not_open_yet(out, hist, series, scope, spec, messages)
    out["closed_pattern"] = out["model_name"].eq("closure_rule")
    return Outcome(out, records, messages, backtest)


def _dormant_step(out: pd.DataFrame, hist: pd.DataFrame, spec: TypeSpec, messages: list[str]) -> pd.Series:
    """Series silent for longer than the dormant rule allows are forecast 0 as a ``rule``; their
    days of silence (series_id -> days), empty without the rule."""
    out["dormant_days"] = np.nan
    dormant = pd.Series(dtype=float)
    if spec.dormant is None or not len(hist):
        return dormant
    dormant = dormant_days(hist, *spec.dormant)
    dead = out["series_id"].isin(dormant.index)
    out.loc[dead, "dormant_days"] = out.loc[dead, "series_id"].map(dormant)
    out.loc[dead, ["yhat", "lower", "upper"]] = 0.0
    out.loc[dead, ["method", "model_name", "model_version"]] = ["rule", "dormant_rule", "rule"]
    if len(dormant):
        messages.append(f"{spec.prediction_type}: {len(dormant)} series without a sale for longer than their "
                        f"own longest gap x {spec.dormant[1]:g} (at least {spec.dormant[0]} days) forecast 0 "
                        f"until they sell again")
    return dormant


def _maker(spec: TypeSpec, context: RestaurantContext | None) -> Callable[[str], object]:
    """The shard's candidate factory: ``make_candidate`` with the restaurants' context, the
    ensemble's parts made alike, and the LightGBM fitted once per fold for it and the top-down blend."""

    def make(name: str):
        if name == MeanEnsemble.name:
            return MeanEnsemble(spec.ensemble, factory=make)
        if name in TOPDOWN:
            return make_candidate(name, spec, context)
        if name == "lightgbm" and context is not None and LGBMTopDownBlend.name in spec.candidates:
            return SharedFit(make_candidate(name, spec), context)  # fitted once per fold for it and the blend
        return make_candidate(name, spec)

    return make


def _model_step(out: pd.DataFrame, hist: pd.DataFrame, seasoned: list[int], features: DemandHistory,
                spec: TypeSpec, scope: Scope, messages: list[str], *,
                save: bool) -> tuple[list[ModelRecord], BacktestResult | None]:
    """1. The model chosen by the backtest (or an earlier run's recent selection), fitted on the
    seasoned series' history; 2. if that fails, the previous model. The records to register and
    tonight's backtest (None when a recent selection was refit)."""
    h_s = hist[hist["series_id"].isin(seasoned)]
    f_mask = out["series_id"].isin(seasoned)
    context = restaurant_context(features)
    make = _maker(spec, context)
    version = shard_version(spec.prediction_type, scope, as_of_format=AS_OF_FORMAT)
    records: list[ModelRecord] = []
    backtest = decision = None
    try:
        selection = recent_selection(spec, scope, h_s["ds"].max(), messages)
        if selection is not None:
            chosen, intervals = selection.name, selection.intervals
            messages.append(f"{spec.prediction_type}: {chosen} refit on today's history; its selection and "
                            f"intervals come from the backtest of {selection.selected_at:%Y-%m-%d} "
                            f"({selection.version})")
        else:
            backtest = _backtest(h_s, spec, make, messages)
            chosen, intervals, decision = _choose(backtest, spec, scope, messages)
        if selection is not None and chosen in (LGBMProphetBlend.name, MeanEnsemble.name) \
                and selection.model is not None and hasattr(selection.model, "models_" if chosen ==
                                                            MeanEnsemble.name else "prophet_"):
            # Prophet is refit at the weekly reselection only; nightly, only the other parts
            model = make(chosen).refit(h_s, selection.model)
        else:
            model = make(chosen).fit(h_s)
        pred = model.predict(out.loc[f_mask], history=h_s)
        _fill(out, f_mask, pred["yhat"].to_numpy(), intervals, "model", chosen, version, h_s)
        if save:
            records.append(register(model, intervals, chosen, version, spec, scope, h_s, backtest, selection,
                                    decision))
    except Exception as exc:
        log.warning("%s: model step failed", spec.prediction_type, exc_info=True)
        messages.append(f"{spec.prediction_type}: model step failed ({type(exc).__name__}: {exc}); "
                        "falling back to the previous model")
        previous = previous_model(spec, scope, out.loc[f_mask], h_s, messages, context)
        if previous is not None:
            _fill(out, f_mask, previous.yhat, previous.intervals, "previous_model", previous.name,
                  previous.version, h_s)
    return records, backtest


def _backtest(h_s: pd.DataFrame, spec: TypeSpec, make: Callable[[str], object],
              messages: list[str]) -> BacktestResult:
    """Every candidate of the spec on its rolling origins (the blend only with a year of history)."""
    yearly = LGBMProphetBlend.name in spec.candidates and yearly_history(h_s, spec)
    if not yearly and LGBMProphetBlend.name in spec.candidates:
        messages.append(f"{spec.prediction_type}: {LGBMProphetBlend.name} not offered: under "
                        f"{YEARLY_MIN_DAYS} days of history before the backtest, Prophet fits no yearly curve")
    factories, combos, helpers = backtest_plan(spec, make, yearly)
    backtest = rolling_origin(
        h_s, factories, pd.Timedelta(days=spec.horizon_days), spec.backtest_folds,
        pd.Timedelta(days=spec.fold_step_days), skip_idle_hours=spec.hourly, combinations=combos,
        helpers=helpers,
    )
    messages += backtest.messages
    return backtest


def _choose(backtest: BacktestResult, spec: TypeSpec, scope: Scope,
            messages: list[str]) -> tuple[str, ConformalIntervals, ChainDecision | None]:
    """The backtest's winner, or the chain's decision where the spec has a default and this shard
    has its backtest; its intervals calibrated on the backtest residuals."""
    if backtest.chosen is None:
        raise RuntimeError("no candidate survived the backtest")
    chosen = backtest.chosen
    decision = None
    if spec.default is not None and spec.default in spec.candidates:
        decision = chain_decision(scope.registry, spec.prediction_type, spec.default, spec.candidates,
                                  exclude_run=str(scope.run_id)[:8])
        if decision.name in backtest.residuals:
            chosen = decision.name
        messages.append(f"{spec.prediction_type}: the chain's decision {decision.name} ({decision.reason})"
                        + ("" if chosen == decision.name else
                           f"; it has no backtest in this shard, {chosen} used"))
    res = backtest.residuals[chosen]
    return chosen, ConformalIntervals(0.8).fit(res["y"], res["yhat"], res["h_days"]), decision


def _rule_step(out: pd.DataFrame, hist: pd.DataFrame, sids: pd.Series, seasoned: list[int], days: pd.Series,
               totals: pd.Series, spec: TypeSpec) -> None:
    """3. Series with a week of open history but no forecast yet: their own seasonal average."""
    missing = out["yhat"].isna()
    eligible = {int(s) for s in sids if days.get(s, 0) >= RULE_MIN_OPEN_DAYS and totals.get(s, 0) > 0}
    if spec.short_series != "rule":
        eligible &= set(seasoned)
    rule_mask = missing & out["series_id"].isin(eligible)
    if rule_mask.any():
        rule = SeasonalAverage(season=spec.slot).fit(hist[hist["series_id"].isin(eligible)])
        pred = rule.predict(out.loc[rule_mask])
        ok = pred["yhat"].notna().to_numpy()
        idx = out.index[rule_mask][ok]
        out.loc[idx, ["yhat", "lower", "upper"]] = pred.loc[ok, ["yhat", "lower", "upper"]].to_numpy()
        out.loc[idx, ["method", "model_name", "model_version"]] = ["rule", rule.name, "rule"]


def _peer_step(out: pd.DataFrame, series: pd.DataFrame, seasoned: list[int], days: pd.Series, totals: pd.Series,
               spec: TypeSpec, messages: list[str]) -> None:
    """4. The rest: their peers' average (shrunk towards their own rate where the spec says so)."""
    missing = out["yhat"].isna()
    if not missing.any():
        return
    # Series with no orders at all are named by the features; those with a little history
    # (a restaurant open two days) would otherwise fall back silently.
    short = sorted({int(s) for s in out.loc[missing, "series_id"]
                    if totals.get(s, 0) > 0 and int(s) not in seasoned})
    if short:
        shown = ", ".join(map(str, short[:20])) + (", ..." if len(short) > 20 else "")
        messages.append(f"{spec.prediction_type}: {len(short)} series with under {spec.min_history_days} open "
                        f"days of history forecast from their peers' average: [{shown}]")
    peer_average(out, missing, series, spec, messages, exclude=out["dormant_days"].notna())
    if spec.peer_shrink_days > 0:
        shrink_to_own(out, missing, days, totals, spec.peer_shrink_days)


def yearly_history(history: pd.DataFrame, spec: TypeSpec) -> bool:
    """Whether most series (the median) have history enough for Prophet to fit a yearly curve
    (``YEARLY_MIN_DAYS``) from the oldest backtest origin on."""
    if history.empty:
        return False
    ds = history.groupby("series_id")["ds"]
    span = ((ds.max() - ds.min()).dt.days).median()
    folds_back = spec.horizon_days + (spec.backtest_folds - 1) * spec.fold_step_days
    return bool(span - folds_back >= YEARLY_MIN_DAYS)


def backtest_plan(spec: TypeSpec, make: Callable[[str], object], yearly: bool = True) -> tuple[dict, dict, tuple[str, ...]]:
    """What the backtest fits per fold: factories (name -> zero-argument constructor), the
    combinations it scores from their fold forecasts at no fitting cost, and the helpers fitted
    only as parts of a combination. The ensemble is the mean of its parts; the LightGBM+Prophet
    blend (equal weights) is the mean of the ``lightgbm`` candidate and Prophet per series, so
    the LightGBM of a fold is fitted once for both, and Prophet is a helper unless listed itself.

    ``yearly``: whether the history is long enough for Prophet's yearly curve (``yearly_history``).
    Without it the blend is not offered: the yearly curve is what Prophet adds to the global model
    (models/blend.py), and Prophet per series in every fold is most of the backtest's cost."""
    combined = (MeanEnsemble.name, LGBMProphetBlend.name)
    factories = {n: (lambda n=n: make(n)) for n in spec.candidates if n not in combined}
    if not yearly:
        spec = replace(spec, candidates=tuple(n for n in spec.candidates if n != LGBMProphetBlend.name))
    combos: dict[str, tuple[str, ...]] = {}
    helpers: tuple[str, ...] = ()
    if MeanEnsemble.name in spec.candidates:
        combos[MeanEnsemble.name] = spec.ensemble
    if LGBMProphetBlend.name in spec.candidates:
        if "lightgbm" in factories and make(LGBMProphetBlend.name).weight == 0.5:
            if "prophet" not in factories:
                factories["prophet"] = lambda: make("prophet")
                helpers = ("prophet",)
            combos[LGBMProphetBlend.name] = ("lightgbm", "prophet")
        else:
            factories[LGBMProphetBlend.name] = lambda: make(LGBMProphetBlend.name)
    return factories, combos or None, helpers


def restaurant_context(features: DemandHistory) -> RestaurantContext | None:
    """The restaurants' daily orders for top-down candidates (item types), or None."""
    if features.context is None or features.context.empty:
        return None
    return RestaurantContext(features.context, features.series.set_index("series_id")["restaurant_id"])


def horizon_days(future: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
    """Days from each series' forecast origin (the period after its history) to each future
    period: the horizon the backtest residuals were bucketed by."""
    hourly = bool((history["ds"] != history["ds"].dt.normalize()).any())
    step = pd.Timedelta(hours=1) if hourly else pd.Timedelta(days=1)
    start = future["series_id"].map(history.groupby("series_id")["ds"].max() + step)
    start = start.fillna(future["ds"].min().normalize())
    return ((future["ds"] - start).dt.total_seconds() / 86400.0).to_numpy()


def _fill(out, mask, yhat, intervals, method, name, version, history) -> None:
    yhat = np.maximum(np.asarray(yhat, float), 0.0)
    ok = np.isfinite(yhat)
    idx = out.index[mask][ok]
    h = horizon_days(out.loc[idx], history) if len(history) else None
    lower, upper = intervals.apply(yhat[ok], h) if intervals is not None else (yhat[ok], yhat[ok])
    out.loc[idx, "yhat"] = yhat[ok]
    out.loc[idx, "lower"] = lower
    out.loc[idx, "upper"] = upper
    out.loc[idx, ["method", "model_name", "model_version"]] = [method, name, version]
