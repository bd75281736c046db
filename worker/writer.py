"""The one writer of ``m_l_predictions`` and its history (``ml_prediction_history``).

Why one module: the RMS reads ``m_l_predictions`` live, so the rules that keep it trustworthy
(an entity's rows of one type change all at once, a re-run never duplicates, a failed run leaves
the previous rows in place) are easiest to keep when there is exactly one place that writes.
The replica is never written: its engine is read-only (``worker.db``).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable
from datetime import datetime
from itertools import repeat

import numpy as np
import pandas as pd
import psycopg2.errors
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from core.jsonb import ENCODER
from worker.history_partitions import (
    HISTORY_MONTHS_AHEAD,
    PARTITION_EXISTS,
    PARTITION_LOCK_KEY,
    RUN_PARTITIONS_READY,
    history_partition_name,
    history_partitions,
    month_start,
    utc,
)

PREDICTION_COLUMNS: tuple[str, ...] = (
    "prediction_type",
    "entity_type",
    "entity_id",
    "restaurant_id",
    "target_start",
    "granularity",
    "value",
    "lower",
    "upper",
    "details",
    "model_name",
    "model_version",
    "method",
    "run_id",
    "generated_at",
    "expires_at",
)
REQUIRED_COLUMNS = ("entity_id", "value", "model_name", "model_version", "method")
METHODS = ("model", "previous_model", "rule", "average")
ENTITY_TYPES = ("restaurant", "menu_item", "customer", "inventory_item", "supplier", "station")


class InvalidPredictionRows(ValueError):
    """Rows that would break the m_l_predictions contract; nothing was written."""


# Entities of this type whose rows come from a run with a later as-of than this run's (a run not
# in ml_run, as in some tests, has no as-of and is taken as the newest).
# The ids go in as a set to join (IN (SELECT unnest(...))), not as ``= ANY(:ids)``: while a run
# writes, the table's statistics are stale (earlier shards' rows not analysed yet), the planner
# then scans every row of the type and searches the id array for each, which grew with the rows
# already there (16k customer ids against 96k churn rows: 3.3 s; as a join: 0.05 s).
_HELD_BY_NEWER_RUN = text(
    "SELECT DISTINCT p.entity_id FROM m_l_predictions p JOIN ml_run r ON r.id = p.run_id "
    "WHERE p.prediction_type = :ptype AND p.entity_type = :etype AND p.entity_id IN (SELECT unnest(CAST(:ids AS bigint[]))) "
    "AND p.run_id <> :run_id AND r.as_of > (SELECT as_of FROM ml_run WHERE id = :run_id) "
    # A run forced to an as-of ahead of the clock (issue 25) never holds the present back.
    "AND r.as_of <= now() + interval '5 minutes'"
)


# This call's rows in m_l_predictions, once COPY put them there (for the history append): the
# contract's key looked up once per entity id. Not ``run_id = :run_id AND entity_id IN (SELECT
# unnest(:ids))``: the table's statistics do not know the rows a run has just COPYed, so the
# planner took the run's rows of the type for one row and checked each against the whole id list,
# every earlier shard's rows times this shard's ids (a weekly's 4th shard of churn: 60k x 20k,
# 52 s of 65 s). OFFSET 0 keeps the lookup per id: the planner may not flatten it and turn it round.
_WRITTEN_NOW = (
    "unnest(CAST(:ids AS bigint[])) AS w(entity_id) CROSS JOIN LATERAL ("
    "SELECT * FROM m_l_predictions p WHERE p.prediction_type = :ptype AND p.entity_type = :etype "
    "AND p.entity_id = w.entity_id AND p.run_id = :run_id OFFSET 0) s"
)


class PredictionWriter:
    def __init__(self, engine: Engine):
        self.engine = engine
        # Entities per type left with a newer run's rows (see replace_predictions).
        self.kept_newer: dict[str, int] = {}

    # ------------------------------------------------------------------ predictions
    def replace_predictions(
        self,
        run_id: uuid.UUID | str,
        prediction_type: str,
        entity_type: str,
        rows: pd.DataFrame,
        *,
        generated_at: datetime,
        expires_at: datetime,
        scope_entity_ids: Iterable[int] = (),
        keep_history: bool = False,
    ) -> int:
        """Make ``rows`` the complete set of this type's rows for every entity they cover.

        All rows go in one transaction: a reader sees an entity's old rows or its new rows, never
        a mix. Other runs' rows of the entities are deleted and the new rows COPYed straight in;
        when this run's own rows are there already (a retried shard, a redelivered message) the
        rows are staged with COPY and upserted on the contract's unique key instead, so a re-run
        leaves exactly one row per key.
        Entities listed in ``scope_entity_ids`` that have no new rows lose their old ones (an
        item discontinued since the last run stops showing a forecast).

        ``keep_history``: also append the rows to ``ml_prediction_history`` (types scored for
        realised accuracy: ``PredictionUnit.scored``), in the same transaction.

        Rows never go back in time: an entity whose current rows come from a run with a later
        as-of (a newer run, while an old run is re-run or replayed) keeps them; such entities are
        counted per type in ``kept_newer`` for the run record.

        Returns the number of rows written.
        """
        if entity_type not in ENTITY_TYPES:
            raise InvalidPredictionRows(f"unknown entity_type {entity_type!r}")
        if rows is None or rows.empty:
            # Nothing new: only the scope's entities lose their old rows.
            rows = pd.DataFrame(columns=list(REQUIRED_COLUMNS))
        frame = self._validated(rows, run_id, prediction_type, entity_type, generated_at, expires_at)
        entity_ids = sorted(set(int(e) for e in frame["entity_id"]) | {int(e) for e in scope_entity_ids})
        if not entity_ids:
            return 0
        key = {"ptype": prediction_type, "etype": entity_type, "run_id": str(run_id)}
        cols = ", ".join(PREDICTION_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in PREDICTION_COLUMNS[3:])
        if keep_history:
            # Outside the write's transaction: creating a partition must not wait inside it.
            self._ensure_history_partition_for(run_id)
        with self.engine.begin() as conn:
            newer = {int(e) for (e,) in conn.execute(_HELD_BY_NEWER_RUN, {**key, "ids": entity_ids})}
            if newer:
                self.kept_newer[prediction_type] = self.kept_newer.get(prediction_type, 0) + len(newer)
                frame = frame[~frame["entity_id"].isin(newer)]
                entity_ids = [e for e in entity_ids if e not in newer]
            if entity_ids:
                # Other runs' rows of these entities go first, in this transaction (readers keep
                # seeing them until it commits): the insert below then meets no conflict and needs
                # no ON CONFLICT DO UPDATE, which cost a speculative insertion per row.
                conn.execute(
                    text(
                        "DELETE FROM m_l_predictions WHERE prediction_type = :ptype "
                        "AND entity_type = :etype AND entity_id IN (SELECT unnest(CAST(:ids AS bigint[]))) "
                        "AND run_id <> :run_id"
                    ),
                    {**key, "ids": entity_ids},
                )
            if len(frame):
                csv = _csv(frame)
                if _copy_unless_conflict(conn, f"COPY m_l_predictions ({cols}) FROM STDIN WITH (FORMAT csv)", csv):
                    # The common case: straight in, no staging table and no second pass.
                    if keep_history:
                        self._append_history(conn, _WRITTEN_NOW,
                                             {**key, "ids": sorted(set(frame["entity_id"].tolist()))})
                else:
                    # This run's own rows are still there (a retried shard, a redelivered message,
                    # a second delivery writing at once): stage and upsert on the contract's key.
                    csv.seek(0)
                    conn.exec_driver_sql(
                        f"CREATE TEMP TABLE ml_stage ON COMMIT DROP AS "
                        f"SELECT {cols} FROM m_l_predictions WITH NO DATA"
                    )
                    cursor = conn.connection.driver_connection.cursor()
                    cursor.copy_expert(f"COPY ml_stage ({cols}) FROM STDIN WITH (FORMAT csv)", csv)
                    conn.exec_driver_sql(
                        f"INSERT INTO m_l_predictions ({cols}) SELECT {cols} FROM ml_stage "
                        f"ON CONFLICT ON CONSTRAINT m_l_predictions_key DO UPDATE SET {updates}"
                    )
                    if keep_history:
                        self._append_history(conn, "ml_stage s")
        return len(frame)

    @staticmethod
    def _validated(
        rows: pd.DataFrame,
        run_id: uuid.UUID | str,
        prediction_type: str,
        entity_type: str,
        generated_at: datetime,
        expires_at: datetime,
    ) -> pd.DataFrame:
        missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
        if missing:
            raise InvalidPredictionRows(f"{prediction_type}: rows lack column(s) {missing}")
        frame = rows.copy()
        frame["prediction_type"] = prediction_type
        frame["entity_type"] = entity_type
        frame["run_id"] = str(run_id)
        frame["generated_at"] = pd.Timestamp(generated_at)
        frame["expires_at"] = pd.Timestamp(expires_at)
        for optional in ("restaurant_id", "target_start", "granularity", "lower", "upper"):
            if optional not in frame.columns:
                frame[optional] = None
        if "details" not in frame.columns:
            frame["details"] = [{} for _ in range(len(frame))]
        values = pd.to_numeric(frame["value"], errors="coerce")
        if not np.isfinite(np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)).all():
            raise InvalidPredictionRows(f"{prediction_type}: value must be a finite number on every row")
        bad_methods = set(frame["method"].unique()) - set(METHODS)
        if bad_methods:
            raise InvalidPredictionRows(f"{prediction_type}: unknown method(s) {sorted(bad_methods, key=str)}")
        frame["entity_id"] = frame["entity_id"].astype("int64")
        frame["target_start"] = pd.to_datetime(frame["target_start"], utc=True)
        if frame.duplicated(["entity_id", "target_start"]).any():
            raise InvalidPredictionRows(f"{prediction_type}: duplicate (entity_id, target_start) rows")
        frame["restaurant_id"] = frame["restaurant_id"].astype("Int64")
        frame["details"] = encode_details(frame["details"].tolist())
        return frame.loc[:, list(PREDICTION_COLUMNS)]

    def retire_restaurants(self, restaurant_ids: list[int], prediction_types: list[str]) -> int:
        """Delete these restaurants' rows of these types (restaurants the RMS deactivated)."""
        if not restaurant_ids or not prediction_types:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(
                text(
                    "DELETE FROM m_l_predictions WHERE restaurant_id = ANY(:rids) "
                    "AND prediction_type = ANY(:types)"
                ),
                {"rids": [int(r) for r in restaurant_ids], "types": list(prediction_types)},
            ).rowcount

    # ------------------------------------------------------------------ prediction history
    # What each scored run predicted, for realised accuracy (reporting/, docs/accuracy.md).
    # The table is partitioned by month of as_of (UTC; migration 0004): rows never leave it one by
    # one, whole months do (prune_history), and the month a run writes into is created ahead.
    def prune_history(self, cutoff: datetime) -> int:
        """Retention: drop the history's monthly partitions that hold only rows made before
        ``cutoff`` (the accuracy settings' retention); returns the number of partitions dropped.

        No ``DELETE``: each expired partition is detached (``DETACH PARTITION ... CONCURRENTLY``,
        which never blocks readers or the writer's appends) and dropped, so nothing is left to
        vacuum. A partition straddling the cutoff stays whole until its last day has expired: the
        history keeps up to a month more than the retention (``docs/operations.md``). A partition
        left detach-pending by an interrupted prune is finished (``FINALIZE``) and dropped.
        """
        dropped = 0
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # Two runs finishing at once (the daily and the weekly) must not detach the same month:
            # one prune (or partition creation) at a time; the list is read under the lock.
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PARTITION_LOCK_KEY})
            try:
                for name, upper, pending in history_partitions(conn):
                    if upper is None or upper > utc(cutoff):
                        continue
                    how = "FINALIZE" if pending else "CONCURRENTLY"
                    conn.exec_driver_sql(f'ALTER TABLE ml_prediction_history DETACH PARTITION "{name}" {how}')
                    conn.exec_driver_sql(f'DROP TABLE "{name}"')
                    dropped += 1
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PARTITION_LOCK_KEY})
        return dropped

    def ensure_history_partitions(self, as_of: datetime, months_ahead: int = HISTORY_MONTHS_AHEAD) -> list[str]:
        """Make sure the monthly partitions from ``as_of``'s month to ``months_ahead`` months
        later exist; returns the names of those created.

        Each is created as a table of its own and attached (``ATTACH PARTITION`` takes a lock that
        lets readers and writers of the history go on; ``CREATE TABLE ... PARTITION OF`` would
        block them for the moment). Concurrent shards serialise on an advisory lock.
        """
        month = month_start(as_of)
        wanted = [month + pd.DateOffset(months=k) for k in range(months_ahead + 1)]
        with self.engine.connect() as conn:
            have = {name for name, _, _ in history_partitions(conn)}
        missing = [m for m in wanted if history_partition_name(m) not in have]
        created = []
        for start in missing:
            name = history_partition_name(start)
            end = start + pd.DateOffset(months=1)
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_KEY})
                # Read under the lock from pg_class itself (this statement's snapshot), not through
                # to_regclass's cache: another shard may have created it while this one waited.
                if conn.execute(PARTITION_EXISTS, {"name": name}).scalar():
                    continue
                conn.exec_driver_sql(
                    f'CREATE TABLE "{name}" (LIKE ml_prediction_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
                conn.exec_driver_sql(
                    f"ALTER TABLE ml_prediction_history ATTACH PARTITION \"{name}\" "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
                created.append(name)
        return created

    def _ensure_history_partition_for(self, run_id: uuid.UUID | str) -> None:
        """Before a scored write: the partition of the run's as-of (and the months ahead) exist.
        One catalog look-up when they do, which is every write but the first of a month."""
        with self.engine.connect() as conn:
            row = conn.execute(RUN_PARTITIONS_READY, {"run_id": str(run_id), "ahead": HISTORY_MONTHS_AHEAD}).first()
        if row is not None and not row.ready:
            self.ensure_history_partitions(row.as_of)

    _HISTORY_COLUMNS = ("run_id", "prediction_type", "entity_id", "restaurant_id", "target_start", "value",
                        "lower", "upper", "model_name", "model_version", "method")

    def _append_history(self, conn: Connection, source: str, params: dict | None = None) -> None:
        """Append the rows just written of a scored type to ``ml_prediction_history``, in the
        caller's transaction, so history and m_l_predictions never disagree about what a run
        predicted.

        INSERT ... SELECT from ``source``, a FROM item named ``s`` (the staging table, or this
        call's rows of m_l_predictions itself: ``_WRITTEN_NOW``): no second trip of the rows. A
        re-run of the same run overwrites its own rows (same key) and never touches another run's.
        """
        cols = ", ".join(self._HISTORY_COLUMNS)
        staged = ", ".join(f"s.{c}" for c in self._HISTORY_COLUMNS)
        # as_of is the partition key and part of the unique key (a run's as_of never changes).
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self._HISTORY_COLUMNS[3:])
        _insert_or_upsert(
            conn,
            f"INSERT INTO ml_prediction_history (as_of, {cols}) "
            f"SELECT r.as_of, {staged} FROM {source} JOIN ml_run r ON r.id = s.run_id",
            f" ON CONFLICT ON CONSTRAINT ml_prediction_history_key DO UPDATE SET {updates}",
            params,
        )


def _copy_unless_conflict(conn: Connection, copy: str, csv: io.BytesIO) -> bool:
    """COPY ``csv`` straight into its table under a savepoint; False (nothing written, the
    transaction whole) when a row's key is taken already, any other error raised as it is."""
    try:
        with conn.begin_nested():
            conn.connection.driver_connection.cursor().copy_expert(copy, csv)
    except psycopg2.errors.UniqueViolation:
        return False
    return True


def _insert_or_upsert(conn: Connection, insert: str, on_conflict: str, params: dict | None = None) -> None:
    """``insert`` as a plain INSERT (the common case: nothing to conflict with); when a row of the
    same key is there already (a re-run of the same run), the same INSERT with ``on_conflict``.
    A savepoint keeps the caller's transaction whole; any other error is raised as it is."""
    try:
        with conn.begin_nested():
            conn.execute(text(insert), params or {})
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) != "23505":  # unique_violation
            raise
        conn.execute(text(insert + on_conflict), params or {})


# ---------------------------------------------------------------------- encoding, column by column
# The per-row work of a large write was the writer's cost (350k rows: ~12 s of json.dumps and
# ~6 s of strftime per timestamp in to_csv); both are done per column here, with the same result.
_PLAIN_SCALARS = frozenset({float, int, bool, type(None), np.float64})


def _encode_column(values: list) -> list[str]:
    """Each value as ``core.jsonb.dumps`` encodes it."""
    if not values:
        return []
    types = set(map(type, values))
    if types <= _PLAIN_SCALARS:
        # numbers, booleans and nulls never contain a comma: one C call for the whole column
        return ENCODER.encode(values)[1:-1].split(",")
    if types == {str}:
        encoded = {v: ENCODER.encode(v) for v in set(values)}
        return list(map(encoded.__getitem__, values))
    return list(map(ENCODER.encode, values))


def encode_details(details: list) -> list[str]:
    """``[dumps(d) for d in details]``, text for text (key order kept), per key set and per key:
    rows whose dicts have the same keys are encoded a column at a time."""
    out: list[str | None] = [None] * len(details)
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(details):
        if type(d) is dict:
            groups.setdefault(tuple(d), []).append(i)
        else:
            out[i] = ENCODER.encode(d)
    for keys, idx in groups.items():
        rows = [details[i] for i in idx]
        if not keys:
            encoded: Iterable[str] = repeat("{}", len(idx))
        elif not all(type(k) is str for k in keys):  # json turns other keys into text its own way
            encoded = map(ENCODER.encode, rows)
        else:
            parts: list = []
            for n, k in enumerate(keys):
                parts.append(repeat(("{" if n == 0 else ",") + ENCODER.encode(k) + ":"))
                parts.append(_encode_column([r[k] for r in rows]))
            parts.append(repeat("}"))
            encoded = map("".join, zip(*parts))
        for i, text_ in zip(idx, encoded):
            out[i] = text_
    return out  # type: ignore[return-value]


def _timestamps_text(values: pd.Series) -> pa.Array:
    """UTC timestamps as ISO 8601 text (null for NaT), each distinct instant formatted once."""
    codes, uniques = pd.factorize(pd.to_datetime(values, utc=True), use_na_sentinel=True)
    formatted = pa.array([t.isoformat() for t in uniques], type=pa.string())
    return formatted.take(pa.array(codes, type=pa.int64(), mask=codes < 0))


def _csv(frame: pd.DataFrame) -> io.BytesIO:
    """The validated rows as COPY's CSV (Arrow's C++ writer: floats round-trip, nulls unquoted)."""
    columns = {}
    for c in PREDICTION_COLUMNS:
        if c in ("target_start", "generated_at", "expires_at"):
            columns[c] = _timestamps_text(frame[c])
        elif c in ("value", "lower", "upper"):
            columns[c] = pa.array(pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
                                  type=pa.float64(), from_pandas=True)
        elif c in ("entity_id", "restaurant_id"):
            columns[c] = pa.array(frame[c], type=pa.int64(), from_pandas=True)
        else:
            try:
                columns[c] = pa.array(frame[c], type=pa.string(), from_pandas=True)
            except (pa.ArrowTypeError, pa.ArrowInvalid):  # not text already (a version given as 3)
                columns[c] = pa.array([None if v is None or v != v else str(v) for v in frame[c]], type=pa.string())
    out = io.BytesIO()
    pa_csv.write_csv(pa.table(columns), out, pa_csv.WriteOptions(include_header=False))
    out.seek(0)
    return out
