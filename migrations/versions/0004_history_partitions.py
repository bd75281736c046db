"""ml_prediction_history partitioned by month of as_of (issue 28).

Revision ID: 0004_history_partitions
Revises: 0003_accuracy
Create Date: 2026-12-07

Why: the history grows by ~0.27 MB per restaurant a day and was pruned with ``DELETE ... WHERE
as_of < cutoff``: millions of dead rows a night for vacuum, I/O beside the RMS's reads. Now each
month of ``as_of`` (UTC) is a partition of its own, ``ml_prediction_history_pYYYYMM``, and
retention detaches and drops whole months (``worker.writer.PredictionWriter.prune_history``); the
writer creates the month of a run's as-of and the two after it when they are missing.

What changes for readers: nothing. Same table name, same columns; the indexes on
``(prediction_type, target_start)`` and ``(as_of)`` are on every partition. The unique key gains
``as_of`` (a partitioned table's unique keys must hold the partition key): a run has one as-of,
so ``(run_id, prediction_type, entity_id, target_start)`` stays unique as before.

The upgrade copies the rows: the old table is renamed, the partitioned one created with one
partition per month that has rows (and the current month and two ahead), the rows moved by
``INSERT ... SELECT``, then the key and indexes built (faster after the load than during it), and
the old table dropped. It holds the tables locked for as long as the copy takes (about the
writer's append rate: ~200 k rows/s here; a chain's year of 10,000 restaurants is billions of
rows: run it in a maintenance window, or prune first). The downgrade copies them back into one
plain table with the 0003 key and indexes.
"""

from datetime import datetime, timezone

from alembic import op
from sqlalchemy import text

revision = "0004_history_partitions"
down_revision = "0003_accuracy"
branch_labels = None
depends_on = None

COLUMNS = """
    run_id          uuid NOT NULL,
    as_of           timestamptz NOT NULL,
    prediction_type text NOT NULL,
    entity_id       bigint NOT NULL,
    restaurant_id   bigint,
    target_start    timestamptz,
    value           real NOT NULL,
    lower           real,
    upper           real,
    model_name      text NOT NULL,
    model_version   text NOT NULL,
    method          text NOT NULL
"""
NAMES = ("run_id, as_of, prediction_type, entity_id, restaurant_id, target_start, value, lower, upper, "
         "model_name, model_version, method")
MONTHS_AHEAD = 2


def _months(first: datetime, last: datetime) -> list[tuple[int, int]]:
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def upgrade() -> None:
    bind = op.get_bind()
    op.execute(
        """
        ALTER TABLE ml_prediction_history RENAME TO ml_prediction_history_unpartitioned;
        ALTER TABLE ml_prediction_history_unpartitioned
            RENAME CONSTRAINT ml_prediction_history_key TO ml_prediction_history_unpartitioned_key;
        ALTER INDEX ml_prediction_history_target RENAME TO ml_prediction_history_unpartitioned_target;
        ALTER INDEX ml_prediction_history_as_of RENAME TO ml_prediction_history_unpartitioned_as_of;
        """
    )
    op.execute(f"CREATE TABLE ml_prediction_history ({COLUMNS}) PARTITION BY RANGE (as_of)")
    lo, hi = bind.execute(text(
        "SELECT min(as_of) AT TIME ZONE 'UTC', max(as_of) AT TIME ZONE 'UTC' FROM ml_prediction_history_unpartitioned"
    )).one()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    first = min(lo, now) if lo is not None else now
    last = max(hi, now) if hi is not None else now
    months = _months(first, last)
    y, m = months[-1]
    for _ in range(MONTHS_AHEAD):
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        months.append((y, m))
    for y, m in months:
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        partition = f"ml_prediction_history_p{y:04d}{m:02d}"  # the writer's naming (history_partition_name)
        op.execute(
            f"CREATE TABLE {partition} PARTITION OF ml_prediction_history "
            f"FOR VALUES FROM ('{y:04d}-{m:02d}-01 00:00:00+00') TO ('{ny:04d}-{nm:02d}-01 00:00:00+00')"
        )
    op.execute(
        f"""
        INSERT INTO ml_prediction_history ({NAMES}) SELECT {NAMES} FROM ml_prediction_history_unpartitioned;
        ALTER TABLE ml_prediction_history ADD CONSTRAINT ml_prediction_history_key UNIQUE NULLS NOT DISTINCT
            (run_id, prediction_type, entity_id, target_start, as_of);
        CREATE INDEX ml_prediction_history_target ON ml_prediction_history (prediction_type, target_start);
        CREATE INDEX ml_prediction_history_as_of ON ml_prediction_history (as_of);
        DROP TABLE ml_prediction_history_unpartitioned;
        ANALYZE ml_prediction_history;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE ml_prediction_history RENAME TO ml_prediction_history_partitioned;
        ALTER TABLE ml_prediction_history_partitioned
            RENAME CONSTRAINT ml_prediction_history_key TO ml_prediction_history_partitioned_key;
        ALTER INDEX ml_prediction_history_target RENAME TO ml_prediction_history_partitioned_target;
        ALTER INDEX ml_prediction_history_as_of RENAME TO ml_prediction_history_partitioned_as_of;
        """
    )
    op.execute(f"CREATE TABLE ml_prediction_history ({COLUMNS})")
    op.execute(
        f"""
        INSERT INTO ml_prediction_history ({NAMES}) SELECT {NAMES} FROM ml_prediction_history_partitioned;
        ALTER TABLE ml_prediction_history ADD CONSTRAINT ml_prediction_history_key UNIQUE NULLS NOT DISTINCT
            (run_id, prediction_type, entity_id, target_start);
        CREATE INDEX ml_prediction_history_target ON ml_prediction_history (prediction_type, target_start);
        CREATE INDEX ml_prediction_history_as_of ON ml_prediction_history (as_of);
        DROP TABLE ml_prediction_history_partitioned;
        """
    )
