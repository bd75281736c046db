"""What the scale bench's parts share (``bench.scale``): the scratch databases, their seeding
and how this process points at them, the log line and peak RSS."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from datetime import date, timedelta

SUFFIX = os.environ.get("RMSML_TEST_DB_SUFFIX", "")
REPLICA_DB = "rmsml_bench_scale_replica" + SUFFIX
ML_DB = "rmsml_bench_scale_ml" + SUFFIX
END = date(2026, 11, 1)
SEED = 19
PLAN = [(n, w) for n in (100, 1000, 10000) for w in (2, 16, 64)]


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ------------------------------------------------------------------ databases
def _seeded_size(url: str) -> tuple[int, int] | None:
    """(restaurants, days) of a replica seeded before, or None."""
    import psycopg2

    try:
        conn = psycopg2.connect(url)
    except psycopg2.Error:
        return None
    try:
        with conn.cursor() as cur:
            # the chain's malformed-timezone restaurant comes on top of the restaurants asked for
            cur.execute("SELECT count(*) FROM restaurants_restaurant r "
                        "WHERE r.timezone IN (SELECT name FROM pg_timezone_names)")
            restaurants = cur.fetchone()[0]
            # the chain's malformed rows include orders stamped in the future: the seeded days end at END
            cur.execute("SELECT min(created_at)::date, max(created_at)::date FROM orders_order "
                        "WHERE created_at < %s", (END + timedelta(days=1),))
            first, last = cur.fetchone()
        return (restaurants, (last - first).days + 1) if first else None
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def prepare_replica(restaurants: int, days: int, keep: bool) -> tuple[str, float | None]:
    from synthetic.scratch import database_url, recreate_database

    url = database_url(REPLICA_DB)
    if keep:
        size = _seeded_size(url)
        if size and size[0] == restaurants and abs(size[1] - days) <= 2:
            log(f"reusing {REPLICA_DB} ({size[0]} restaurants, {size[1]} days)")
            return url, None
    url = recreate_database(REPLICA_DB)
    log(f"seeding {restaurants} x {days} into {REPLICA_DB}")
    started = time.perf_counter()
    code = (
        "import datetime as dt, sys\n"
        "from synthetic import ChainConfig, seed_database\n"
        f"seed_database({url!r}, ChainConfig(restaurants={restaurants}, days={days}, seed={SEED}, "
        f"end=dt.date({END.year}, {END.month}, {END.day})))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return url, round(time.perf_counter() - started, 1)


def point_at(replica_url: str, ml_url: str, store: str) -> None:
    """Settings and engines of this process point at the scratch databases."""
    from worker import db
    from worker.db import sqlalchemy_url
    from worker.settings import get_settings

    os.environ["RMSML_REPLICA__URL"] = sqlalchemy_url(replica_url)
    os.environ["RMSML_PREDICTIONS__URL"] = sqlalchemy_url(ml_url)
    os.environ["RMSML_MODEL_STORE__PATH"] = store
    os.environ["RMSML_WEBHOOKS__URLS"] = "[]"
    os.environ.setdefault("RMSML_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    db.reset_engines()


def count(url: str, sql: str) -> int:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])
    finally:
        conn.close()
