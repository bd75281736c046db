"""Prediction types as declared units, and what the run loop hands them.

A unit says which schedule runs it, which replica tables it needs, how its features are read
(``features``: reader + scope -> anything) and how rows are made from them (``predict``: features +
scope -> ``UnitResult``, no connection). The run loop in ``worker.runs`` executes whatever units a
schedule names; adding a prediction type means adding a unit, not changing the loop.

Units that read the same thing say so (``shares``): the loop reads it once per shard and hands the
same object to each, instead of each domain keeping a process-global cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.aggregates import AggregateStore
from core.replica import ReplicaReader, Requirement
from core.settings import ForecastSettings, InventorySettings


@dataclass(frozen=True)
class Scope:
    """What one shard of one run is about. Plain data: safe to hand to models."""

    run_id: str
    schedule: str
    as_of: pd.Timestamp  # UTC; history is strictly before it, horizons start from it
    restaurants: pd.DataFrame  # id, organization_id, timezone, country_code, opened_on
    forecast: ForecastSettings
    model_store: Path
    valid_until: datetime  # wall-clock now plus tolerance: later timestamps are malformed
    registry: pd.DataFrame = field(default_factory=pd.DataFrame)  # earlier registered models
    inventory: InventorySettings = field(default_factory=InventorySettings)  # inventory/pricing/anomaly policy
    # The demand aggregates kept between nights (``worker.aggregates``), handed in by the run loop;
    # None reads every day from the replica. Only ``features.aggregate_cache`` touches it.
    aggregates: AggregateStore | None = None

    @property
    def restaurant_ids(self) -> list[int]:
        return [int(i) for i in self.restaurants["id"]]

    @property
    def history_start(self) -> pd.Timestamp:
        return self.as_of - pd.Timedelta(days=self.forecast.history_days)


@dataclass
class ModelRecord:
    """A saved artifact for the registry (the writer records it)."""

    name: str
    version: str
    artifact_path: str
    sha256: str
    training_start: datetime | None
    training_end: datetime | None
    metrics: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitResult:
    rows: pd.DataFrame
    scope_entity_ids: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    models: list[ModelRecord] = field(default_factory=list)


@dataclass(frozen=True)
class PredictionUnit:
    prediction_type: str
    entity_type: str
    schedules: tuple[str, ...]
    requires: tuple[Requirement, ...]
    features: Callable[[ReplicaReader, Scope], Any]
    predict: Callable[[Any, Scope], UnitResult]
    # Units of a shard with the same key share one ``features`` result: the loop calls the first
    # unit's ``features`` once and hands its result to the others (their ``features`` must be the
    # same function). None: the unit reads for itself.
    shares: str | None = None
    # Whether realised accuracy scores this type (its rows are kept in the prediction history).
    scored: bool = False
    # Why the replica, though it has the tables, holds nothing this unit can use (e.g. no customer
    # profiles), or None. Checked when the run begins; a reason skips the unit like a missing
    # module does, named in the run record's modules_skipped.
    unusable: Callable[[ReplicaReader], str | None] | None = None

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(r.table for r in self.requires)
