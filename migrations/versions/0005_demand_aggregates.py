"""The demand types' aggregates kept between nights (issue 28).

Revision ID: 0005_demand_aggregates
Revises: 0004_history_partitions
Create Date: 2026-12-07

Why: every night each shard re-aggregated up to two years of raw orders on the replica (orders
and revenue per local day, orders per local hour, units per item and local day) although one day
was new. The aggregates of complete local days are kept here and a night reads from the replica
only the days it cannot trust (``features.aggregate_cache`` says which; ``worker.aggregates`` is
the tables' one writer).

- ``ml_demand_aggregate_day``: one row per restaurant, kind (``daily``, ``hourly``, ``items``) and
  complete local day whose aggregates are kept, with the replica it was read from (``source``:
  host, port and database; a predictions database pointed at another replica trusts nothing kept
  from the first), the zone it was bucketed in, when it was read
  (``read_at``, wall clock: the replica as it was then) and how many ``orders_order`` rows the day
  had (any status, malformed included): the cheap check that the day has not changed since.
- ``ml_demand_daily_aggregate``, ``ml_demand_hourly_aggregate``, ``ml_demand_item_aggregate``: the
  rows the replica's aggregate queries return for those days (days and hours without orders have
  none, as in the queries).
- ``ml_demand_watermark``: per restaurant and kind, the last complete local day kept.

No rows are converted: an empty cache means the next night reads everything, as before.
"""

from alembic import op

revision = "0005_demand_aggregates"
down_revision = "0004_history_partitions"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE ml_demand_aggregate_day (
    restaurant_id bigint NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('daily', 'hourly', 'items')),
    local_date    date NOT NULL,
    source        text NOT NULL,
    zone          text NOT NULL,
    order_rows    bigint NOT NULL,
    read_at       timestamptz NOT NULL,
    PRIMARY KEY (restaurant_id, kind, local_date)
);
CREATE TABLE ml_demand_daily_aggregate (
    restaurant_id bigint NOT NULL,
    local_date    date NOT NULL,
    orders        float8 NOT NULL,
    revenue       float8 NOT NULL,
    PRIMARY KEY (restaurant_id, local_date)
);
CREATE TABLE ml_demand_hourly_aggregate (
    restaurant_id    bigint NOT NULL,
    local_date       date NOT NULL,
    hour_start       timestamptz NOT NULL,
    local_hour_start timestamp NOT NULL,
    orders           float8 NOT NULL,
    one_time         boolean NOT NULL,
    first_time       text NOT NULL,
    PRIMARY KEY (restaurant_id, hour_start)
);
CREATE INDEX ml_demand_hourly_aggregate_day ON ml_demand_hourly_aggregate (restaurant_id, local_date);
CREATE TABLE ml_demand_item_aggregate (
    restaurant_id bigint NOT NULL,
    local_date    date NOT NULL,
    menu_item_id  bigint NOT NULL,
    units         float8 NOT NULL,
    PRIMARY KEY (restaurant_id, local_date, menu_item_id)
);
CREATE TABLE ml_demand_watermark (
    restaurant_id bigint NOT NULL,
    kind          text NOT NULL,
    through       date NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, kind)
);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute(
        "DROP TABLE ml_demand_watermark, ml_demand_item_aggregate, ml_demand_hourly_aggregate, "
        "ml_demand_daily_aggregate, ml_demand_aggregate_day"
    )
