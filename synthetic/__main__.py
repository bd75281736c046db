"""``python -m synthetic seed --dsn URL --restaurants N --days D --seed S [--end YYYY-MM-DD] [--no-kitchen ...]``

Prints the summary (rows per table and the ground truth) as JSON on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys

from synthetic.config import ChainConfig
from synthetic.loader import seed_database
from core.contract import MODULES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed", help="drop, recreate and fill the replica tables of a database")
    seed.add_argument("--dsn", required=True, help="postgresql://user@host:port/db (or postgresql+psycopg2://)")
    seed.add_argument("--restaurants", type=int, default=5)
    seed.add_argument("--days", type=int, default=365)
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--end", type=dt.date.fromisoformat, default=None, help="exclusive end date (UTC); default today")
    for m in MODULES:
        seed.add_argument(f"--no-{m}", action="store_true", help=f"leave out the {m} module")
    seed.add_argument("--no-malformed", action="store_true", help="do not plant malformed rows")
    seed.add_argument("--no-ground-truth", action="store_true", help="print row counts only")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    cfg = ChainConfig(
        restaurants=args.restaurants,
        days=args.days,
        seed=args.seed,
        end=args.end,
        modules=tuple(m for m in MODULES if not getattr(args, f"no_{m}")),
        malformed=not args.no_malformed,
    )
    summary = seed_database(args.dsn, cfg, progress=lambda msg: print(msg, file=sys.stderr))
    if args.no_ground_truth:
        summary.pop("ground_truth")
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
