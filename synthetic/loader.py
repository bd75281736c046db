"""Create the replica schema from the contract file and bulk-load a synthetic chain into it.

Speed comes from three choices: rows go in as binary COPY (see tables.py); tables are filled in
the transaction that created them, before their primary keys, indexes and foreign keys exist
(COPY FREEZE, no per-row index maintenance or foreign-key triggers); and generation runs in a
background thread while the server ingests the previous chunk. Constraints and indexes are then
added back exactly as the contract declares them (same names, same definitions), and adding a
foreign key afterwards validates every row, so nothing is skipped, only batched.
"""

from __future__ import annotations

import io
import logging
import queue
import re
import threading
import time
from collections import defaultdict
from typing import Any, Callable

import psycopg2

from core.contract import contract, dependency_order, tables_for
from core.pg import libpq_dsn
from synthetic.config import ChainConfig
from synthetic.generator import iter_chunks
from synthetic.tables import encode_copy_binary

log = logging.getLogger(__name__)

_COPY_READ_SIZE = 1 << 20


def create_schema(conn, modules: tuple[str, ...], *, deferred: bool = False) -> list[tuple[str, str]]:
    """Drop every contract table, then create those of ``modules`` from the contract SQL.

    Args:
        conn: an open psycopg2 connection (not autocommit; the caller commits).
        modules: optional modules present; their tables and indexes are created, others skipped.
        deferred: when True, create the tables bare (primary keys and foreign keys dropped right
            after creation, indexes not yet created) for a fast bulk load, and return the
            statements that restore them, in the order they must run.

    Returns:
        [(table, sql)] to run after loading: primary keys, then indexes, then foreign keys.
        Empty when not ``deferred``.
    """
    defs = contract()
    wanted = tables_for(modules)
    with conn.cursor() as cur:
        for t in reversed(dependency_order(list(defs))):
            cur.execute(f"DROP TABLE IF EXISTS {t} CASCADE")
        for t in wanted:
            cur.execute(_without_missing_references(defs[t].create_sql, set(wanted)))
        if not deferred:
            for t in wanted:
                for stmt in defs[t].index_sql:
                    cur.execute(stmt)
            return []
        cur.execute(
            """
            SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE conrelid = ANY (%s::regclass[]) AND contype IN ('p', 'f')
            """,
            (wanted,),
        )
        cons = cur.fetchall()
        for table, name, kind, _ in sorted(cons, key=lambda c: c[2] != "f"):  # foreign keys first
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    restore = [(t, f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}') for t, n, k, d in cons if k == "p"]
    restore += [(t, stmt) for t in wanted for stmt in defs[t].index_sql]
    restore += [(t, f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}') for t, n, k, d in cons if k == "f"]
    return restore


def _without_missing_references(create_sql: str, present: set[str]) -> str:
    """Drop a REFERENCES clause to a table of an omitted module (menu_menuitem.station_id without
    kitchen): the column stays, as in an RMS installed without that module, only the key goes."""

    def keep(m: re.Match) -> str:
        return m.group(0) if m.group(1) in present else ""

    return re.sub(r"\s+REFERENCES\s+(\w+)\s*(?:\([^)]*\))?", keep, create_sql)


def seed_database(dsn: str, cfg: ChainConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Drop and recreate the replica tables in the database at ``dsn`` and fill them with ``cfg``'s chain.

    Args:
        dsn: libpq or SQLAlchemy URL, e.g. postgresql://postgres@127.0.0.1:5432/db or
            postgresql+psycopg2://...; query parameters (host=/socket/dir) pass through.
        cfg: the chain. Tables of modules not in cfg.modules are not created (kitchen_*,
            inventory_* with menu_recipeingredient, payments_payment); core tables always are.
        progress: optional callback receiving one-line progress messages.

    Returns:
        {table: rows loaded} for every created table, plus "ground_truth": GroundTruth.to_dict().
    """
    say = progress or log.info
    url = libpq_dsn(dsn)
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
        restore = create_schema(conn, cfg.modules, deferred=True)
        counts = _load(conn, cfg, say)
        conn.commit()
    except BaseException:
        conn.rollback()
        conn.close()
        raise
    conn.close()
    truth = counts.pop("__truth__")
    _restore_constraints(url, restore, counts, say)
    summary: dict[str, Any] = {t: counts.get(t, 0) for t in tables_for(cfg.modules)}
    summary["ground_truth"] = truth.to_dict()
    return summary


def _load(conn, cfg: ChainConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """COPY every chunk; a producer thread generates and encodes the next chunk meanwhile."""
    truth, chunks = iter_chunks(cfg)
    wanted = set(tables_for(cfg.modules))
    q: queue.Queue = queue.Queue(maxsize=2)
    done = object()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for i, chunk in enumerate(chunks):
                payload = [(t, encode_copy_binary(t, cols)) for t, cols in chunk.items() if t in wanted]
                q.put((i, payload))
        except BaseException as exc:  # handed to the consumer, re-raised there
            failure.append(exc)
        finally:
            q.put(done)

    producer = threading.Thread(target=produce, name="synthetic-generate", daemon=True)
    producer.start()
    counts: dict[str, int] = defaultdict(int)
    started = time.monotonic()
    n_chunks = cfg.restaurants + 1 + (1 if cfg.malformed else 0)
    with conn.cursor() as cur:
        while True:
            item = q.get()
            if item is done:
                break
            i, payload = item
            for table, data in payload:
                cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT binary, FREEZE)", io.BytesIO(data), size=_COPY_READ_SIZE)
                counts[table] += cur.rowcount
            if i and (i % 10 == 0 or i == n_chunks - 1):
                say(f"loaded {i}/{n_chunks - 1} chunks, {sum(counts.values())} rows, {time.monotonic() - started:.0f} s")
    producer.join()
    if failure:
        raise failure[0]
    out: dict[str, Any] = dict(counts)
    out["__truth__"] = truth
    return out


def _restore_constraints(url: str, restore: list[tuple[str, str]], rows: dict[str, int], say: Callable[[str], None]) -> None:
    """Primary keys, then indexes, then foreign keys, in two sessions.

    Adding a foreign key locks both tables against other such DDL, so the two sessions only ever
    run statements on disjoint tables (else one would sit waiting), biggest tables first.
    """
    phases = [
        [s for s in restore if "PRIMARY KEY" in s[1]],
        [s for s in restore if s[1].upper().startswith("CREATE")],
        [s for s in restore if "FOREIGN KEY" in s[1]],
    ]
    started = time.monotonic()
    for phase in phases:
        jobs = []
        for table, sql in phase:
            locked = frozenset({table} | set(re.findall(r"REFERENCES\s+(\w+)", sql)))
            jobs.append((locked, sql, rows.get(table, 0)))
        jobs.sort(key=lambda j: -j[2])
        for sql, seconds in _run_disjoint(url, [(j[0], j[1]) for j in jobs]):
            log.debug("%.1f s %s", seconds, sql)
            if seconds >= 5:
                say(f"{seconds:.0f} s: {sql[:110]}")
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE " + ", ".join(sorted({t for t, _ in restore})) if restore else "SELECT 1")
    finally:
        conn.close()
    say(f"constraints and indexes restored in {time.monotonic() - started:.0f} s")


def _run_disjoint(url: str, jobs: list[tuple[frozenset[str], str]], sessions: int = 2) -> list[tuple[str, float]]:
    """Run DDL statements in ``sessions`` parallel sessions, never two on a shared table.

    Memory settings are sized so that index sorts and the foreign-key validation joins stay in
    memory for tables of tens of millions of rows.
    """
    pending = list(jobs)
    busy: set[str] = set()
    cond = threading.Condition()
    timings: list[tuple[str, float]] = []
    errors: list[BaseException] = []

    def next_job():
        with cond:
            while True:
                if errors or not pending:
                    return None
                for job in pending:
                    if not (job[0] & busy):
                        pending.remove(job)
                        busy.update(job[0])
                        return job
                cond.wait()

    def worker() -> None:
        try:
            conn = psycopg2.connect(url)
        except BaseException as exc:
            with cond:
                errors.append(exc)
                cond.notify_all()
            return
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SET maintenance_work_mem = '1GB'")
                cur.execute("SET work_mem = '512MB'")
                while (job := next_job()) is not None:
                    t0 = time.monotonic()
                    try:
                        cur.execute(job[1])
                    except BaseException as exc:
                        with cond:
                            errors.append(exc)
                    finally:
                        with cond:
                            busy.difference_update(job[0])
                            timings.append((job[1], time.monotonic() - t0))
                            cond.notify_all()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, name=f"synthetic-ddl-{i}") for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return timings
