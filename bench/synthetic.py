"""Benchmark: generate and load a synthetic chain into a scratch database.

    python -m bench.synthetic [--quick] [--keep]

--quick is 10 restaurants x 365 days; the default is the full 100 x 730. The last line printed is
one JSON object: {"bench": "synthetic", "restaurants", "days", "rows", "seconds",
"rows_per_second", "peak_rss_mb"} (peak RSS of this Python process, not of the server).
The admin connection comes from RMSML_BENCH_ADMIN_URL or RMSML_TEST_ADMIN_URL (default
postgresql://postgres@127.0.0.1:5432/postgres); the scratch database is dropped afterwards unless
--keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time

import psycopg2

from synthetic import ChainConfig, seed_database
from synthetic.loader import libpq_dsn

SCRATCH_DB = "rmsml_bench_synth"


def _admin_url() -> str:
    return libpq_dsn(
        os.environ.get("RMSML_BENCH_ADMIN_URL")
        or os.environ.get("RMSML_TEST_ADMIN_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def _db_url(admin: str, name: str) -> str:
    base, sep, query = admin.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (sep + query if sep else "")


def _admin(sql: str) -> None:
    conn = psycopg2.connect(_admin_url())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic")
    parser.add_argument("--quick", action="store_true", help="10 restaurants x 365 days")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    restaurants, days = (10, 365) if args.quick else (100, 730)
    _admin(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    _admin(f"CREATE DATABASE {SCRATCH_DB}")
    cfg = ChainConfig(restaurants=restaurants, days=days, seed=42, end=dt.date(2026, 11, 23))
    started = time.monotonic()
    try:
        summary = seed_database(_db_url(_admin_url(), SCRATCH_DB), cfg, progress=lambda m: print(m, file=sys.stderr, flush=True))
        seconds = time.monotonic() - started
    finally:
        if not args.keep:
            _admin(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    summary.pop("ground_truth")
    rows = sum(summary.values())
    for table, n in summary.items():
        print(f"{table:<32} {n:>12}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "bench": "synthetic",
                "restaurants": restaurants,
                "days": days,
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_second": round(rows / seconds),
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
