"""Malformed rows counted through the counts kept between nights (issue 28): the run record's
figure is a full count's, new malformed rows count at once, and a change to a row stamped long ago
reaches the figure when its restaurant is counted in full (one night in the cycle).

On a small synthetic chain in a replica of its own, which the tests edit behind the kept counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import text

from features import quality
from features.quality import count_malformed
from worker.malformed_counts import MalformedKeeper


TABLES = ["orders_order", "orders_orderitem", "kitchen_orderitemstation", "inventory_stockmovement",
          "inventory_batch"]
NOW = datetime.now(timezone.utc)


@pytest.fixture()
def own_replica(own_chain):
    return own_chain("rmsml_test_replica_malformed", restaurants=2, days=90, seed=12, end=NOW.date())


@pytest.fixture()
def keeper(predictions_engine):
    keeper = MalformedKeeper(predictions_engine, "test-replica:5432/malformed")
    keeper.forget()
    yield keeper
    keeper.forget()


def _counts(reader, kept=None, **kw) -> dict:
    valid_until = datetime.now(timezone.utc) + timedelta(minutes=5)
    return count_malformed(reader, TABLES, [1, 2], valid_until, kept, **kw)


def _bad_order(writer, days_ago: float) -> None:
    """A copy of a recent order of restaurant 1 with a negative total, stamped ``days_ago``, and a
    copy of one of its lines with a negative quantity."""
    with writer.begin() as conn:
        order = conn.execute(text("SELECT max(o.id) FROM orders_order o JOIN orders_orderitem i ON i.order_id = o.id "
                                  "WHERE o.restaurant_id = 1")).scalar()
        new = conn.execute(text("SELECT max(id) + 1 FROM orders_order")).scalar()
        conn.execute(text("CREATE TEMP TABLE o AS SELECT * FROM orders_order WHERE id = :i"), {"i": order})
        conn.execute(text("UPDATE o SET id = :n, total = -1, created_at = :t"),
                     {"n": new, "t": NOW - timedelta(days=days_ago)})
        conn.execute(text("INSERT INTO orders_order SELECT * FROM o"))
        conn.execute(text("CREATE TEMP TABLE li AS SELECT * FROM orders_orderitem WHERE order_id = :i LIMIT 1"),
                     {"i": order})
        conn.execute(text("UPDATE li SET id = (SELECT max(id) + 1 FROM orders_orderitem), order_id = :n, "
                          "quantity = -2"), {"n": new})
        conn.execute(text("INSERT INTO orders_orderitem SELECT * FROM li"))
        conn.execute(text("DROP TABLE o, li"))


def test_kept_counts_equal_a_full_count_and_new_rows_count_at_once(own_replica, keeper, monkeypatch):
    reader, writer = own_replica
    full = _counts(reader)
    assert full.get("orders_order", 0) > 0 or full.get("orders_orderitem", 0) > 0  # the chain plants some
    assert _counts(reader, keeper) == full  # the first night counts everything and keeps it
    kept = {t: keeper.kept_counts(t, [1, 2]) for t in TABLES}
    assert all(len(kept[t]) == 2 for t in quality._STAMPED if t in TABLES)
    assert keeper.kept_counts("inventory_batch", [1, 2]).empty  # a small table: counted whole, nothing kept
    _bad_order(writer, days_ago=6)  # inside the re-read window, stamped before the kept count was taken
    monkeypatch.setattr(quality, "_due", lambda rids, have, now, cycle: [])  # nobody's night to count in full
    full = _counts(reader)
    assert _counts(reader, keeper) == full
    # nothing was counted again in full: the kept counts are those of the first night
    for t in quality._STAMPED:
        pd.testing.assert_frame_equal(keeper.kept_counts(t, [1, 2]).sort_values("restaurant_id", ignore_index=True),
                                      kept[t].sort_values("restaurant_id", ignore_index=True))


def test_a_change_long_ago_reaches_the_count_on_its_restaurants_full_count(own_replica, keeper, monkeypatch):
    reader, writer = own_replica
    _counts(reader, keeper)
    _bad_order(writer, days_ago=60)
    full = _counts(reader)
    with monkeypatch.context() as m:
        m.setattr(quality, "_due", lambda rids, have, now, cycle: [])
        stale = _counts(reader, keeper)
    assert stale["orders_order"] == full["orders_order"] - 1  # stamped before the cutoff: not seen yet
    assert stale["orders_orderitem"] == full["orders_orderitem"] - 1
    assert _counts(reader, keeper, cycle=1) == full  # a full count every night


def test_every_shard_is_counted_in_full_once_in_a_cycle_and_shards_take_turns():
    shards = [list(range(1 + 10 * k, 11 + 10 * k)) for k in range(7)]
    have = pd.DataFrame({"restaurant_id": range(1, 71), "counted_at": pd.Timestamp(NOW)})
    nights = []
    for shard in shards:
        full = [night for night in range(7)
                if quality._due(shard, have, pd.Timestamp(NOW) + pd.Timedelta(days=night) - pd.Timedelta(hours=1), 7)]
        assert len(full) == 1  # the whole shard on one night of the cycle, none on the others
        assert quality._due(shard, have, pd.Timestamp(NOW) + pd.Timedelta(days=full[0]) - pd.Timedelta(hours=1),
                            7) == shard
        nights.append(full[0])
    assert len(set(nights)) == 7  # shards of consecutive restaurants take turns
    # a missing or week-old count is counted in full whatever the night
    off = next(n for n in range(7) if n != nights[0])
    at = pd.Timestamp(NOW) + pd.Timedelta(days=off) - pd.Timedelta(hours=1)
    old = have.assign(counted_at=pd.Timestamp(NOW) - pd.Timedelta(days=8))
    assert quality._due(shards[0], old, at, 7) == shards[0]
    assert quality._due(shards[0], have[have["restaurant_id"] != 3], at, 7) == [3]
