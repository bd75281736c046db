"""Malformed replica rows counted before a cutoff, kept between nights (issue 28).

Revision ID: 0006_malformed_counts
Revises: 0005_demand_aggregates
Create Date: 2026-12-08

Why: every shard counted the malformed rows of its restaurants' whole history every night, for
the run record (``features.quality.count_malformed``): four scans of the largest replica tables
a night, growing with history, although only the newest rows change. A count now keeps, per
restaurant and table, how many malformed rows were stamped before a cutoff (``cutoff``: the
re-read window before the count); a night counts only the rows stamped since (and those with no
stamp) and adds the kept number, and recounts everything for a seventh of the restaurants a night.

- ``ml_malformed_count``: restaurant, replica table, the replica it was counted on (``source``:
  host, port and database, as the kept aggregates), the cutoff, the malformed rows stamped before
  it, and when they were counted (wall clock).

No rows are converted: an empty table means the next night counts everything, as before.
"""

from alembic import op

revision = "0006_malformed_counts"
down_revision = "0005_demand_aggregates"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE ml_malformed_count (
    restaurant_id    bigint NOT NULL,
    table_name       text NOT NULL,
    source           text NOT NULL,
    cutoff           timestamptz NOT NULL,
    malformed_before bigint NOT NULL,
    counted_at       timestamptz NOT NULL,
    PRIMARY KEY (restaurant_id, table_name)
);
"""


def upgrade() -> None:
    op.execute(DDL)


def downgrade() -> None:
    op.execute("DROP TABLE ml_malformed_count")
