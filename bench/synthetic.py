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
import resource
import sys
import time

from synthetic import ChainConfig, seed_database
from synthetic.scratch import drop_database, recreate_database

SCRATCH_DB = "rmsml_bench_synth"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic")
    parser.add_argument("--quick", action="store_true", help="10 restaurants x 365 days")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    restaurants, days = (10, 365) if args.quick else (100, 730)
    url = recreate_database(SCRATCH_DB)
    cfg = ChainConfig(restaurants=restaurants, days=days, seed=42, end=dt.date(2026, 11, 23))
    started = time.monotonic()
    try:
        summary = seed_database(url, cfg, progress=lambda m: print(m, file=sys.stderr, flush=True))
        seconds = time.monotonic() - started
    finally:
        if not args.keep:
            drop_database(SCRATCH_DB)
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
