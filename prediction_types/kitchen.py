"""Kitchen: prep time per menu item (minutes for one unit at an idle station, and how a queue
stretches it), daily.

Path: ``features.kitchen.kitchen_unit_features`` reads the shard's tickets (SQL, bounded history)
and menu; ``models.prep_time.PrepTimeModel`` is fitted when there are enough tickets (at most weekly,
see ``REFIT_DAYS``); on the nights between, only each item's newest tickets are read (``kitchen_features``:
what the predictions use) and the medians are the ones kept in the model's artifact, unless the
model turns out unusable; the rows
below fall back per item to the item's, then the station's median (``method`` ``average``), and
the run messages count what was skipped or kept out of training. Details in docs/kitchen.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.replica import ReplicaReader
from core.tables import KITCHEN_TICKETS, MENU_ITEMS, ORDER_ITEMS, STATIONS
from core.units import ModelRecord, PredictionUnit, Scope, UnitResult
from features.kitchen import KitchenData, kitchen_unit_features
from features.kitchen_frames import (
    UNBUMPED_EXTRA_MINUTES,
    UNBUMPED_MIN_MINUTES,
    UNBUMPED_RATIO,
    add_item_reference,
    left_unbumped,
    references_cover,
)
from models.artifacts import load_model, previous_records, saved_record, shard_version
from models.churn import MODEL_VERSION_PREFIX
from models.prep_time import (
    FALLBACK_NAME,
    FEATURES,
    GRID_ROWS_PER_ITEM,
    MIN_ITEM_TICKETS,
    MIN_TICKETS,
    MODEL_NAME,
    QUEUE_SIZES,
    PrepTimeModel,
    scenario_minutes,
)

# Prep time by station changes slowly: the model is fitted at most once a week per shard and the
# other nights predict with it (issue 19: the fit was most of the unit's time). A new station type
# in the tickets refits at once.
REFIT_DAYS = 7
# A night that reuses the model reads each item's newest GRID_ROWS_PER_ITEM tickets plus these,
# so that the tickets the unbumped filter drops still leave the grid its full count (else it reads all).
GRID_READ_SLACK = 16


def _reusable_records(scope: Scope) -> list:
    """This shard's prep-time registry records trained less than ``REFIT_DAYS`` before the as-of, newest first."""
    recs = []
    for rec in previous_records(scope, "prep_time", MODEL_NAME).itertuples(index=False):
        end = pd.to_datetime(rec.training_end, utc=True)
        if not pd.isna(end) and scope.as_of - end < pd.Timedelta(days=REFIT_DAYS):
            recs.append(rec)
    return recs


def kitchen_features(reader: ReplicaReader, scope: Scope) -> KitchenData:
    """The unit's reads. A night with a model to reuse (one registered less than ``REFIT_DAYS``
    ago) reads only each item's newest tickets, which is all a prediction uses, and not the
    medians (the model keeps its own: ``predict_prep_time``); a night that fits,
    or finds the model unusable after all, reads every ticket of the window (issue 28: the full read
    was most of a warm night's prep time)."""
    per_item = GRID_ROWS_PER_ITEM + GRID_READ_SLACK if _reusable_records(scope) else None
    return kitchen_unit_features(reader, scope, recent_per_item=per_item, unbumped_min_minutes=UNBUMPED_MIN_MINUTES)


@dataclass
class _Reusable:
    """The newest checksum-verified prep-time model this shard registered less than ``REFIT_DAYS``
    before the as-of and its registry record (None, None without one), and the run messages of
    the artifacts passed over on the way (said where the night decides on its model)."""

    model: PrepTimeModel | None = None
    rec: Any = None
    unusable: list[str] = field(default_factory=list)


def _reusable_model(scope: Scope) -> _Reusable:
    unusable: list[str] = []
    for rec in _reusable_records(scope):
        try:
            model = load_model(PrepTimeModel, Path(rec.artifact_path), rec.sha256)
        except Exception as exc:  # a missing, tampered or incompatible artifact: try the next, else fit
            unusable.append(f"prep_time: model {rec.version} unusable ({type(exc).__name__}: {exc}); refitting")
            continue
        return _Reusable(model, rec, unusable)
    return _Reusable(unusable=unusable)


def _recent_model(reusable: _Reusable, station_types: set[str], messages: list[str]):
    """(model, registry record) of the reusable model when it knows every station type; else None."""
    messages.extend(reusable.unusable)
    if reusable.model is None or not station_types <= set(reusable.model.station_types_):
        return None
    return reusable.model, reusable.rec


def _details(station_id: int, by_queue: dict, extra: float | None, fallback: str | None, tickets: int) -> dict:
    d = {"station_id": int(station_id), "minutes_by_queue": {str(k): round(float(v), 2) for k, v in by_queue.items()},
         "extra_minutes_per_unit": None if extra is None else round(float(extra), 2), "tickets": int(tickets),
         "interval_level": 0.8}
    if fallback:
        d["fallback"] = fallback
    return d


def _unbumped_message(n: int, among: str = "") -> str:
    return (f"prep_time: {n} ticket(s){among} open over {UNBUMPED_RATIO:g}x their item's median or "
            f"{UNBUMPED_EXTRA_MINUTES:g} minutes beyond it (left unbumped on the screen) kept out of training")


def _reused_message(version: str, rec) -> str:
    return (f"prep_time: model {version} (trained to {pd.Timestamp(rec.training_end):%Y-%m-%d}) reused; "
            f"refitted every {REFIT_DAYS} days")


def _recent_suffices(data: KitchenData) -> bool:
    """Whether each item's newest tickets (``data.recent``) can stand for the full read: the full
    read would keep at least MIN_TICKETS and every station type whatever the unbumped filter
    drops, and no active item needs its usual station guessed from all its tickets."""
    r = data.recent
    if r is None:
        return False
    no_station = data.menu["is_active"].astype(bool) & data.menu["station_id"].isna()
    return r.station_types_sure and r.window_tickets - r.over_minutes >= MIN_TICKETS and not no_station.any()


def _reuse_on_recent(data: KitchenData, reusable: _Reusable):
    """(tickets for the grid, model, version, messages) when the model is reused on the newest
    tickets alone and they give the grid the full read would; else None (the caller reads all)."""
    r = data.recent
    messages: list[str] = []
    tickets = add_item_reference(r.tickets, data.medians) if len(r.tickets) else r.tickets
    kept = tickets
    if len(tickets):
        unbumped = left_unbumped(tickets)
        kept = tickets[~unbumped]
        read = tickets.groupby("menu_item_id").size()
        left = kept.groupby("menu_item_id").size().reindex(read.index, fill_value=0)
        if ((read >= r.per_item) & (left < GRID_ROWS_PER_ITEM)).any():
            return None  # an item lost so many to the filter that older tickets would fill its grid
        if unbumped.any():
            messages.append(_unbumped_message(int(unbumped.sum()), " of the items' newest"))
    recent = _recent_model(reusable, r.station_types, messages)
    if recent is None:
        return None
    model, rec = recent
    messages.append(_reused_message(str(rec.version), rec))
    return kept, model, str(rec.version), messages


def _model_on_all_tickets(data: KitchenData, scope: Scope, reusable: _Reusable, version: str,
                          models: list[ModelRecord], messages: list[str], may_fit: bool = True):
    """(training tickets, model or None, version) from every ticket of the window: the shard's
    recent model reused when it may be, else fitted (its record appended to ``models``) when there
    are enough tickets, else None (medians). Without ``may_fit``, None instead of anything but a reuse."""
    tickets = add_item_reference(data.tickets, data.medians) if len(data.tickets) else data.tickets
    if len(tickets):
        unbumped = left_unbumped(tickets)
        if unbumped.any():
            messages.append(_unbumped_message(int(unbumped.sum())))
            tickets = tickets[~unbumped]
    recent = _recent_model(reusable, set(tickets["station_type"]), messages) if len(tickets) >= MIN_TICKETS else None
    if recent is not None:
        model, rec = recent
        messages.append(_reused_message(str(rec.version), rec))
        return tickets, model, str(rec.version)
    if not may_fit:
        return None
    if len(tickets) < MIN_TICKETS:
        messages.append(f"prep_time: {len(tickets)} completed ticket(s) are too few for the model; medians used")
        return tickets, None, version
    model = PrepTimeModel().fit(tickets, references=data.medians)
    models.append(saved_record(
        model, Path(scope.model_store) / MODEL_NAME / version, name=MODEL_NAME, version=version,
        training_start=(data.as_of - pd.Timedelta(days=90)).to_pydatetime(), training_end=data.as_of.to_pydatetime(),
        metrics={"holdout_mae_minutes": model.holdout_mae_, "tickets": int(len(tickets))},
        params={"features": list(FEATURES), "queue_sizes": list(QUEUE_SIZES)},
    ))
    return tickets, model, version


def predict_prep_time(data: KitchenData, scope: Scope) -> UnitResult:
    """Rows for every active menu item of the shard that has a station with prep history.

    A night that reuses the shard's model takes the item and station medians (the references of
    the ratio target, the fallback values, the items' ticket counts) from the model's artifact
    (``PrepTimeModel.references_``, checksum-checked with it) instead of reading them: the read
    (``prep_medians``, 365 days of tickets: two whole-table scans and a sort spilled to disk) was
    most of a warm night's prep time (issue 28). Why medians up to ``REFIT_DAYS`` old are good
    enough: a week changes at most 7 of the 365 days a median is taken over (about 2 % of its
    tickets), and the model reused beside them is as old and learnt its ratios against exactly
    these values, so the pair stays one consistent fit until the next refit. What they cannot
    stand for reads them as before: an artifact without them (saved before they were kept), an
    (item, station) or station of tonight's single-unit tickets that they lack
    (``references_cover``), and a night that ends up not reusing the model (it reads them and
    decides again, as it did without them; a fit always gets fresh medians).
    """
    reusable = _reusable_model(scope)
    kept = reusable.model.references_ if reusable.model is not None else None
    if kept is not None:
        result, lean = _predict(replace(data, medians=kept), scope, reusable, kept_medians=True)
        if result is not None:
            return result
        data = replace(lean, medians=data.medians)  # keeps any tickets read meanwhile
    if data.medians is None:
        data = replace(data, medians=data.read_medians())
    result, _ = _predict(data, scope, reusable, kept_medians=False)
    return result


def _predict(data: KitchenData, scope: Scope, reusable: _Reusable,
             kept_medians: bool) -> tuple[UnitResult | None, KitchenData]:
    """(the unit's result, the data with whatever tickets it had to read). With ``kept_medians``
    (``data.medians`` are the reusable model's own), the result is None unless the model is
    reused on medians that cover tonight's tickets."""
    scope_ids = data.menu["menu_item_id"].astype("int64").tolist()
    messages: list[str] = []
    if data.tickets is None and not _recent_suffices(data):
        data = replace(data, tickets=data.read_tickets())
    sold = data.recent.tickets if data.tickets is None else data.tickets
    if kept_medians and not references_cover(data.medians, sold):
        return None, data
    active = _active_items(data, messages)
    version = shard_version(MODEL_VERSION_PREFIX, scope)
    models: list[ModelRecord] = []
    model = None
    reused = _reuse_on_recent(data, reusable) if data.tickets is None else None
    if reused is None:
        if data.tickets is None:  # the model turned out unusable, or the newest tickets could not stand in
            data = replace(data, tickets=data.read_tickets())
        chosen = _model_on_all_tickets(data, scope, reusable, version, models, messages, may_fit=not kept_medians)
        if chosen is None:
            return None, data
        tickets, model, version = chosen
    else:
        tickets, model, version, lean_messages = reused
        messages += lean_messages

    modelled = active[(active["item_tickets"] >= MIN_ITEM_TICKETS) & active["item_ref"].notna()] if model else active.iloc[:0]
    rows = []
    mult_by_type: dict[str, dict] = {}
    if len(modelled):
        sc = scenario_minutes(model, tickets, modelled[["menu_item_id", "station_id", "station_type", "item_ref", "station_ref"]])
        sc = modelled.merge(sc, on="menu_item_id")
        for r in sc.itertuples(index=False):
            by_queue = {q: getattr(r, f"q{q}") for q in QUEUE_SIZES}
            rows.append({"entity_id": r.menu_item_id, "restaurant_id": r.restaurant_id, "value": round(float(r.q0), 2),
                         "lower": round(float(r.q0 * model.ratio_q10_), 2), "upper": round(float(r.q0 * model.ratio_q90_), 2),
                         "details": _details(r.station_id, by_queue, r.two_units - r.q0, None, r.item_tickets),
                         "model_name": MODEL_NAME, "model_version": version, "method": "model"})
        # Queue and extra-unit effects per station type, relative to idle: for the fallback items.
        rel = sc.assign(**{f"m{q}": sc[f"q{q}"] / sc["q0"] for q in QUEUE_SIZES}, extra=(sc["two_units"] - sc["q0"]) / sc["q0"])
        for st, g in rel.groupby("station_type"):
            mult_by_type[st] = {"by_queue": {q: float(g[f"m{q}"].mean()) for q in QUEUE_SIZES}, "extra": float(g["extra"].mean())}

    rows += _fallback_rows(active[~active["menu_item_id"].isin(modelled["menu_item_id"])], mult_by_type, version,
                           messages)
    frame = pd.DataFrame(rows, columns=["entity_id", "restaurant_id", "value", "lower", "upper", "details",
                                        "model_name", "model_version", "method"])
    frame["entity_id"] = frame["entity_id"].astype("int64")
    return UnitResult(rows=frame, scope_entity_ids=scope_ids, messages=messages, models=models), data


def _active_items(data: KitchenData, messages: list[str]) -> pd.DataFrame:
    """The shard's active menu items at their station, with the SQL medians of the item
    (``item_ref``, ``item_tickets``) and of its station (``station_ref``, ``station_tickets``);
    items without a station are dropped, and said so in ``messages``."""
    active = data.menu[data.menu["is_active"]].copy()
    # An item without a station on the menu is placed at the station its tickets went to most.
    if data.tickets is not None and len(data.tickets):
        usual = data.tickets.groupby("menu_item_id")["station_id"].agg(lambda s: s.value_counts().index[0])
        missing = active["station_id"].isna()
        active.loc[missing, "station_id"] = active.loc[missing, "menu_item_id"].map(usual)
    no_station = active["station_id"].isna()
    if no_station.any():
        messages.append(f"prep_time: {int(no_station.sum())} active item(s) without a station skipped")
    active = active[~no_station].copy()
    active["station_id"] = active["station_id"].astype("int64")
    active = active.drop(columns=["station_type"]).merge(data.stations[["station_id", "station_type"]],
                                                         on="station_id", how="left")
    med = data.medians
    item_med = med[med["level"] == "item"].set_index(["menu_item_id", "station_id"])
    station_med = med[med["level"] == "station"].set_index("station_id")
    key = list(zip(active["menu_item_id"].astype(float), active["station_id"]))
    active["item_ref"] = [item_med["median_minutes"].get(k, np.nan) for k in key]
    active["item_tickets"] = [int(item_med["tickets"].get(k, 0)) for k in key]
    active["station_ref"] = active["station_id"].map(station_med["median_minutes"])
    active["station_tickets"] = active["station_id"].map(station_med["tickets"]).fillna(0).astype(int)

    idle = data.stations[~data.stations["station_id"].isin(station_med.index)]
    if len(idle):
        messages.append("prep_time: station(s) " + ", ".join(str(s) for s in idle["station_id"])
                        + " have no completed tickets; their items fall back or are skipped")
    return active


def _fallback_rows(rest: pd.DataFrame, mult_by_type: dict[str, dict], version: str, messages: list[str]) -> list[dict]:
    """Rows of the items the model does not cover: the item's median, else its station's, scaled
    by the model's queue and extra-unit effects of the station type when there are some."""
    rows = []
    skipped = 0
    for r in rest.itertuples(index=False):
        if pd.notna(r.item_ref) and r.item_tickets > 0:
            value, fallback, n = float(r.item_ref), "item_median", r.item_tickets
        elif pd.notna(r.station_ref):
            value, fallback, n = float(r.station_ref), "station_median", r.station_tickets
        else:
            skipped += 1
            continue
        mult = mult_by_type.get(r.station_type)
        by_queue = {q: value * (mult["by_queue"][q] if mult else 1.0) for q in QUEUE_SIZES}
        extra = value * mult["extra"] if mult else None
        rows.append({"entity_id": r.menu_item_id, "restaurant_id": r.restaurant_id, "value": round(value, 2),
                     "lower": None, "upper": None, "details": _details(r.station_id, by_queue, extra, fallback, n),
                     "model_name": FALLBACK_NAME, "model_version": version, "method": "average"})
    if skipped:
        messages.append(f"prep_time: {skipped} active item(s) skipped: no completed tickets for the item or its station")
    return rows


UNITS: tuple[PredictionUnit, ...] = (
    PredictionUnit(
        prediction_type="prep_time",
        entity_type="menu_item",
        schedules=("daily",),
        requires=(KITCHEN_TICKETS, STATIONS, ORDER_ITEMS, MENU_ITEMS),
        features=kitchen_features,
        predict=predict_prep_time,
    ),
)
