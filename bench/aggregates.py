"""What the kept demand aggregates save a night (issue 28): seconds in replica reads of the demand
features, full read against a first night that keeps them (cold) and the next night (warm), at
365 and 730 days of history on the same chain.

    .venv/bin/python -m bench.aggregates            # 20 restaurants x 730 days, shards of 10
    .venv/bin/python -m bench.aggregates --quick    # 10 restaurants x 730 days

Per shard and history length: the three demand feature sets (``daily_demand_features``,
``hourly_demand_features``, ``item_demand_features``, as ``prediction_types.demand.DemandInputs``
reads them) with ``Scope.aggregates`` None (``full``), then on an emptied store the night before
(``cold``: reads everything and keeps it) and the night (``warm``); the warm frames are checked
equal to the full read's. ``read_s`` is the time inside ``ReplicaReader`` calls (``bench.scale_reads
.ReadClock``), ``total_s`` the features' whole time (the store's reads and writes included).
The scratch replica is vacuumed first, as a replica's old pages are (index-only counts need it).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.scale_common import END, log, prepare_replica, point_at

ML_DB = "rmsml_bench_agg_ml" + os.environ.get("RMSML_TEST_DB_SUFFIX", "")
AS_OF = pd.Timestamp(f"{END.isoformat()}T04:15:00Z") - pd.Timedelta(days=1)


def _features(reader, scope) -> dict:
    from features.demand import daily_demand_features, hourly_demand_features
    from features.items import item_demand_features

    daily = daily_demand_features(reader, scope)
    return {"daily": daily, "hourly": hourly_demand_features(reader, scope, daily=daily),
            "items": item_demand_features(reader, scope, daily=daily)}


def _timed(reader, scope) -> tuple[dict, dict]:
    from bench.scale_reads import ReadClock

    started = time.perf_counter()
    with ReadClock() as clock:
        got = _features(reader, scope)
    return got, {"read_s": clock.seconds, "total_s": time.perf_counter() - started, "rows": clock.rows}


def _same(a: dict, b: dict) -> None:
    for kind in a:
        for part in ("history", "future", "series"):
            pd.testing.assert_frame_equal(getattr(a[kind], part), getattr(b[kind], part))


def _night(reader, shard, as_of, history_days, keeper):
    from core.settings import ForecastSettings
    from core.units import Scope

    return Scope(run_id="bench-aggregates", schedule="daily", as_of=as_of, restaurants=shard,
                 forecast=ForecastSettings(history_days=history_days), model_store=Path(tempfile.gettempdir()),
                 valid_until=pd.Timestamp.now(tz="UTC").to_pydatetime(), aggregates=keeper)


def measure(restaurants: int, days: int, shard_size: int) -> dict:
    from sqlalchemy import create_engine, text

    from core.replica import ReplicaReader
    from features.restaurants import load_restaurants
    from synthetic.scratch import recreate_database
    from worker import db
    from worker.aggregates import AggregateKeeper
    from worker.db import sqlalchemy_url
    from worker.migrations import upgrade

    replica_url, seeded_s = prepare_replica(restaurants, days, keep=True)
    ml_url = recreate_database(ML_DB)
    upgrade(ml_url)
    point_at(replica_url, ml_url, tempfile.mkdtemp(prefix="bench-agg-"))
    vacuum = create_engine(sqlalchemy_url(replica_url), isolation_level="AUTOCOMMIT")
    with vacuum.connect() as conn:
        conn.execute(text("VACUUM ANALYZE orders_order, orders_orderitem"))
    vacuum.dispose()
    reader = ReplicaReader(db.replica_engine())
    keeper = AggregateKeeper(db.predictions_engine(), "bench")
    found = load_restaurants(reader).restaurants
    shards = [found.iloc[i:i + shard_size].reset_index(drop=True) for i in range(0, len(found), shard_size)]
    out: dict = {"restaurants": len(found), "days": days, "shard_size": shard_size, "seeded_s": seeded_s}
    for history in (365, 730):
        keeper.forget()
        sums = {k: {"read_s": 0.0, "total_s": 0.0, "rows": 0} for k in ("full", "cold", "warm")}
        for shard in shards:
            full, f = _timed(reader, _night(reader, shard, AS_OF, history, None))
            _, c = _timed(reader, _night(reader, shard, AS_OF - pd.Timedelta(days=1), history, keeper))
            warm, w = _timed(reader, _night(reader, shard, AS_OF, history, keeper))
            _same(warm, full)
            for key, got in (("full", f), ("cold", c), ("warm", w)):
                for k, v in got.items():
                    sums[key][k] += v
        log(f"history {history} days: " + ", ".join(f"{k} read {v['read_s']:.2f} s of {v['total_s']:.2f} s"
                                                    for k, v in sums.items()))
        out[str(history)] = {k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in sums.items()}
    per100 = 100 / max(1, len(found))
    out["read_s_per_100_restaurants"] = {h: {k: round(out[h][k]["read_s"] * per100, 2) for k in ("full", "warm")}
                                         for h in ("365", "730")}
    out["warm_read_ratio"] = {h: round(out[h]["warm"]["read_s"] / out[h]["full"]["read_s"], 3) for h in ("365", "730")}
    out["full_read_history_ratio"] = round(out["730"]["full"]["read_s"] / out["365"]["full"]["read_s"], 3)
    out["warm_read_history_ratio"] = round(out["730"]["warm"]["read_s"] / out["365"]["warm"]["read_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 restaurants instead of 20")
    parser.add_argument("--restaurants", type=int, default=None)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--shard-size", type=int, default=10)
    args = parser.parse_args()
    restaurants = args.restaurants or (10 if args.quick else 20)
    print(json.dumps(measure(restaurants, args.days, args.shard_size)))


if __name__ == "__main__":
    main()
