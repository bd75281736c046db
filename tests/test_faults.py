"""The drill, repeated with real processes on this machine (issue 18): faults mid-run, and the
guarantees that must hold after each.

Everything here is the drill's own, so it can be broken without touching other tests: a
PostgreSQL cluster (initdb into a temporary directory, on a spare port; restarted, connections
terminated), a redis-server on a spare port (append-only file, so a restart keeps its queues;
wiped for the broker-loss scenario), a replica seeded with a small synthetic chain and a
predictions database, two real Celery workers (``-A tests.celery_drill``, every shard slowed by
``RMSML_TEST_SHARD_PAUSE_S``) and a verifying webhook receiver (the reference receiver behind
``tests.test_webhooks.ScriptedReceiver``) that records every request with its ``webhook-id``.

The monthly schedule is the drill's run (one prediction type, about a second per restaurant):
4 restaurants, one per shard. The daily schedule (demand daily, hourly and per item, anomalies; the
replica has no inventory or kitchen module) runs once, cold (every model backtested), beside the
stranded monthly run; its shards take up to about 20 s on two busy cores, hence shard limits of
40/45 s and a visibility timeout of 50 s. Scenarios run in file order on the same servers; each starts a run
(or several), causes its fault at a chosen moment and then checks, besides its own expectations:

- no duplicate key in ``m_l_predictions`` and no entity with rows from two runs;
- every run closed, with the status the scenario expects, within a bound;
- at the receiver, exactly one (verified) ``webhook-id`` per run outcome;
- no SQL text in any run or shard record.

Moments are made deterministic with locks rather than timing: a replica query is "mid-query"
when it waits on a table lock the test holds; a write is "mid-write" when the writer waits on the
lock of ``m_l_predictions`` (both workers waiting there also means the other two shards are still
queued). The stranded-run scenario waits out ``RMSML_TASKS__STRANDED_AFTER_S`` (60 s, its
minimum) in real time, so nothing but the clock makes the run stranded.

Scenarios (docs/operations.md, "What happens when", cites them): redelivered start, shard and
finish messages; a replica connection terminated mid-query; PostgreSQL restarted mid-write; Redis
restarted with its append-only file; Redis lost without its data (a stranded run); an old run
re-run by id; a worker killed with SIGKILL mid-shard (last: it leaves one worker). About 3
minutes in all on two cores, most of it the stranded run's minute of silence (the daily run fills
it) and the killed worker's visibility timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from tests.celery_harness import (
    PgCluster,
    RedisServer,
    find_pg_bin,
    start_workers,
    wait_for,
)

pytestmark = pytest.mark.faults

SCHEDULE = "monthly"
RESTAURANTS = 4
STRANDED_AFTER_S = 60
CLOSE_WITHIN_S = 120  # "closed within minutes": every run here is closed within two
AS_OF = {
    "first": "2026-10-25T05:15:00Z",
    "replica_cut": "2026-10-26T05:15:00Z",
    "pg_restart": "2026-10-27T05:15:00Z",
    "redis_restart": "2026-10-28T05:15:00Z",
    "stranded": "2026-10-29T05:15:00Z",
    "after_stranded": "2026-10-30T05:15:00Z",
    "newer": "2026-10-30T17:15:00Z",
    "daily": "2026-10-24T04:15:00Z",  # before every monthly run: the re-run scenario's "newest" stays monthly
    "killed": "2026-10-31T05:15:00Z",
}
# SQL a failure reason must never carry (statements, SQLAlchemy's "[SQL: ...]" and parameters).
SQL_TEXT = re.compile(r"\[SQL:|\[parameters:|\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|\bUPDATE\b.+\bSET\b|"
                      r"\bDELETE FROM\b|\bON CONFLICT\b", re.IGNORECASE | re.DOTALL)


class Drill:
    """The drill's servers and workers, and the checks every scenario ends with."""

    def __init__(self, pg: PgCluster, broker: RedisServer, receiver, log_dir: Path, env: dict[str, str]):
        from celery import Celery

        from worker.queues import TASK_ROUTES

        self.pg, self.broker, self.receiver, self.log_dir, self.env = pg, broker, receiver, log_dir, env
        self.workers: list = []
        self.client = Celery("rmsml-faults", broker=env["RMSML_BROKER__URL"], backend=env["RMSML_BROKER__RESULT_BACKEND"])
        self.client.conf.update(
            task_serializer="json", result_serializer="json", accept_content=["json"],
            result_accept_content=["json"], result_extended=True,
            task_routes={name: {"queue": queue.value} for name, queue in TASK_ROUTES.items()},
            broker_transport_options={"visibility_timeout": int(env["RMSML_BROKER__VISIBILITY_TIMEOUT_S"])},
            broker_connection_retry_on_startup=True,
        )
        self.expected: dict[str, set[str]] = {}  # run id -> statuses it may have ended with

    # ------------------------------------------------------------------ acting
    def send(self, name: str, task_id: str | None = None, **kwargs):
        return self.client.send_task(name, kwargs=kwargs, task_id=task_id, retry=True,
                                     retry_policy={"max_retries": 10, "interval_start": 0.5, "interval_step": 0.5})

    def start(self, as_of: str, task_id: str | None = None, schedule: str = SCHEDULE, **kwargs) -> dict:
        """Send ``rmsml.runs.start`` and return its result (the run id and its task ids)."""
        result = self.send("rmsml.runs.start", task_id=task_id or str(uuid.uuid4()), schedule=schedule,
                           as_of=as_of, trigger="drill", **kwargs).get(timeout=60)
        if result["status"] == "started":
            self.expected.setdefault(result["run_id"], set())
        return result

    def admin(self, db: str = "ml"):
        conn = psycopg2.connect(self.pg.url(db), application_name="rms-ml-drill")
        conn.autocommit = True
        return conn

    def q(self, sql: str, db: str = "ml", **params) -> list[tuple]:
        conn = self.admin(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def shard_status(self, run_id: str) -> dict[int, str]:
        return dict(self.q("SELECT shard_no, status FROM ml_run_shard WHERE run_id = %(id)s", id=run_id))

    def wait_shard(self, run_id: str, status: str, timeout: float = 60) -> int:
        """The number of a shard of the run that reached ``status``."""
        def seen():
            found = [n for n, s in self.shard_status(run_id).items() if s == status]
            return found[0] + 1 if found else None

        return wait_for(seen, timeout, f"a shard of run {run_id} to be {status}") - 1

    def run_status(self, run_id: str) -> str | None:
        rows = self.q("SELECT status FROM ml_run WHERE id = %(id)s", id=run_id)
        return rows[0][0] if rows else None

    def wait_closed(self, run_id: str, timeout: float = CLOSE_WITHIN_S) -> str:
        status = wait_for(lambda: (s := self.run_status(run_id)) not in (None, "running") and s, timeout,
                          f"run {run_id} to be closed", interval=0.5)
        return status

    @contextmanager
    def holding(self, lock_table: str, mode: str, db: str):
        """``LOCK TABLE lock_table IN mode MODE`` held by a connection of the test's own while the
        block runs (a shard's query waits on it: the fault then hits it mid-query), released after.
        The connection may be gone by then (the server restarted): closing it is then enough."""
        conn = psycopg2.connect(self.pg.url(db), application_name="rms-ml-drill")
        try:
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = '20s'")
                cur.execute(f"LOCK TABLE {lock_table} IN {mode} MODE")
            yield conn
        finally:
            try:
                conn.rollback()
            except psycopg2.Error:
                pass
            conn.close()

    def blocked(self, app: str, db: str) -> list[int]:
        """Backends of ``app`` in database ``db`` waiting on a lock right now."""
        return [pid for (pid,) in self.q(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %(app)s AND datname = %(db_name)s "
            "AND state = 'active' AND wait_event_type = 'Lock'", db="postgres", app=app, db_name=db)]

    # ------------------------------------------------------------------ checking
    def webhooks(self) -> dict[tuple, set[str]]:
        """Verified requests at the receiver: (run id, outcome) -> the webhook-ids it came with."""
        seen: dict[tuple, set[str]] = defaultdict(set)
        for request in list(self.receiver.requests):
            assert request.verified, "the receiver got a request it could not verify"
            data = json.loads(request.body)["data"]
            outcome = (data["run_id"], data["status"], json.dumps(data["prediction_types"], sort_keys=True),
                       json.dumps(data["failed"], sort_keys=True))
            seen[outcome].add(request.headers["webhook-id"])
        return seen

    def check(self, run_id: str, status: str | set[str], owner: str | None = None) -> dict:
        """The guarantees after a scenario; returns the run's record."""
        wanted = {status} if isinstance(status, str) else set(status)
        got = self.wait_closed(run_id)
        assert got in wanted, f"run {run_id} closed {got}, expected {wanted}: {self.run_row(run_id)}\n{self.logs()}"
        self.expected[run_id] = wanted
        # m_l_predictions: one row per key, every entity from one run, and whose
        assert self.q("SELECT count(*) - count(DISTINCT (prediction_type, entity_type, entity_id, target_start)) "
                      "FROM m_l_predictions") == [(0,)]
        assert self.q("SELECT prediction_type, entity_type, entity_id FROM m_l_predictions GROUP BY 1, 2, 3 "
                      "HAVING count(DISTINCT run_id) > 1") == []
        if owner is not None:  # every row of the owner's schedule's types is the owner's
            assert {str(r) for (r,) in self.q(
                "SELECT DISTINCT run_id FROM m_l_predictions WHERE prediction_type IN (SELECT jsonb_array_elements_text("
                "prediction_types) FROM ml_run WHERE schedule = (SELECT schedule FROM ml_run WHERE id = %(id)s))",
                id=owner)} == {owner}
        # every closed run announced, once per outcome, to the verifying receiver
        # (a run's current outcome: its id, status and committed rows; a re-run's outcome is new)
        closed = {(str(r), s, json.dumps({str(k): int(v) for k, v in w.items()}, sort_keys=True))
                  for r, s, w in self.q("SELECT id, status, rows_written FROM ml_run WHERE status <> 'running'")}
        wait_for(lambda: closed <= {k[:3] for k in self.webhooks()}, 60,
                 "the receiver to hear of every closed run's outcome", interval=0.5)
        for outcome, ids in self.webhooks().items():
            assert len(ids) == 1, f"{outcome}: {len(ids)} webhook-ids {ids}"
        recorded = self.q("SELECT run_id, count(*) FROM ml_webhook_delivery GROUP BY 1")
        heard = defaultdict(int)
        for outcome in self.webhooks():
            heard[outcome[0]] += 1
        assert {str(r): n for r, n in recorded} == dict(heard)
        # no SQL in what admins and the RMS read
        for row in self.q("SELECT id, coalesce(error, ''), failed::text, messages::text FROM ml_run") + self.q(
                "SELECT run_id, coalesce(error, ''), messages::text, '' FROM ml_run_shard"):
            for field in row[1:]:
                assert not SQL_TEXT.search(field), f"SQL text in the record of run {row[0]}: {field[:500]}"
        # every run this drill closed still has the status it was checked with
        for rid, statuses in self.expected.items():
            if statuses:
                assert self.run_status(rid) in statuses, rid
        return self.run_row(run_id)

    def run_row(self, run_id: str) -> dict:
        conn = self.admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id, status, as_of, rows_written, failed, error, messages, finished_at "
                            "FROM ml_run WHERE id = %(id)s", {"id": run_id})
                row = cur.fetchone()
                return dict(zip([c.name for c in cur.description], row)) if row else {}
        finally:
            conn.close()

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.log()[-2500:]}" for w in self.workers)

    def log_marks(self) -> dict[str, int]:
        """Where each worker's log ends now, for ``logged_since``."""
        return {w.name: len(w.log()) for w in self.workers}

    def logged_since(self, marks: dict[str, int]) -> str:
        return "\n".join(w.log()[marks.get(w.name, 0):] for w in self.workers)


@pytest.fixture(scope="module")
def drill():
    bindir, redis_bin = find_pg_bin(), shutil.which("redis-server")
    # Missing binaries fail the drill rather than skip it: scripts/test.sh installs both from the OS
    # packages (scripts/services.sh), and a skipped drill would let CI pass untested.
    assert bindir is not None and redis_bin is not None, (
        "the fault drill needs initdb/pg_ctl (PostgreSQL 15+) and redis-server on this machine; scripts/test.sh "
        f"installs them (initdb: {bindir or 'not found'}, redis-server: {redis_bin or 'not found'})")
    from synthetic import ChainConfig, scratch, seed_database
    from tests.test_webhooks import ScriptedReceiver, new_secret
    from worker import db
    from worker.migrations import upgrade
    from worker.settings import get_settings

    tmp = Path(tempfile.mkdtemp(prefix="rmsml-faults-"))
    saved_env = dict(os.environ)
    pg = broker = receiver = None
    workers: list = []
    the_drill = None
    try:
        pg = PgCluster(bindir)
        pg.start()
        (tmp / "redis").mkdir()
        broker = RedisServer(tmp / "redis", redis_bin)
        broker.start()
        replica_url = scratch.recreate_database("replica", pg.url())
        predictions_url = scratch.recreate_database("ml", pg.url())
        seed_database(replica_url, ChainConfig(restaurants=RESTAURANTS, days=150, seed=7, end=date(2026, 11, 1),
                                               modules=(), malformed=False))
        upgrade(predictions_url)
        receiver = ScriptedReceiver([new_secret()])
        env = {
            "RMSML_REPLICA__URL": replica_url,
            "RMSML_PREDICTIONS__URL": predictions_url,
            "RMSML_BROKER__URL": broker.url(0),
            "RMSML_BROKER__RESULT_BACKEND": broker.url(1),
            "RMSML_MODEL_STORE__PATH": str(tmp / "models"),
            "RMSML_SCHEDULES__SHARD_SIZE": "1",
            "RMSML_TEST_SHARD_PAUSE_S": "2",
            # a killed worker's shard is handed out again after 50 s (above a cold daily shard's
            # hard limit), swept for every second
            "RMSML_BROKER__VISIBILITY_TIMEOUT_S": "50",
            "RMSML_BROKER__UNACKED_RESTORE_INTERVAL_S": "1",
            "RMSML_BROKER__UNACKED_RESTORE_THROTTLE": "1",
            "RMSML_TASKS__SHARD_SOFT_TIME_LIMIT_S": "40",
            "RMSML_TASKS__SHARD_TIME_LIMIT_S": "45",
            "RMSML_TASKS__STRANDED_AFTER_S": str(STRANDED_AFTER_S),
            "RMSML_WEBHOOKS__RECEIVERS": json.dumps([{"name": "rms", "url": receiver.url(), "secrets": receiver.secrets}]),
            "RMSML_WEBHOOKS__URLS": "[]",
            "RMSML_WEBHOOKS__BACKOFF_BASE_S": "0.5",
            "RMSML_WEBHOOKS__BACKOFF_MAX_S": "5",
            "RMSML_WEBHOOKS__TIMEOUT_S": "2",
            "RMSML_WEBHOOKS__CONNECT_TIMEOUT_S": "1",
        }
        os.environ.update(env)  # this process reads the drill's databases too (restored below)
        get_settings.cache_clear()
        db.reset_engines()
        workers = start_workers(["w1", "w2"], tmp, env, queues="runs,scoring,training,webhooks")
        # and one on the webhooks queue alone (compose's worker-webhooks): the sweep and the
        # deliveries are not queued behind the shards of a long run
        workers += start_workers(["w3"], tmp, env, queues="webhooks")
        the_drill = Drill(pg, broker, receiver, tmp, env)
        the_drill.workers = workers
        yield the_drill
    finally:
        for proc in workers:
            proc.stop(grace=5)
        if the_drill is not None:
            the_drill.client.close()
        if receiver is not None:
            receiver.close()
        db.reset_engines()
        os.environ.clear()
        os.environ.update(saved_env)
        get_settings.cache_clear()
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------- scenarios
def test_redelivered_start_shard_and_finish_messages_change_nothing(drill):
    start_id = str(uuid.uuid4())
    started = drill.start(AS_OF["first"], task_id=start_id)
    run_id, shard_ids = started["run_id"], started["shard_task_ids"]
    assert started["status"] == "started" and started["shards"] == RESTAURANTS
    # the start message again, while the run is going: the same dispatch, no second run
    drill.client.AsyncResult(start_id).forget()  # so .get() waits for the second delivery's result
    again = drill.start(AS_OF["first"], task_id=start_id)
    assert again["redelivered"] is True and again["shard_task_ids"] == shard_ids and again["run_id"] == run_id
    # shard 0's message again, while the run is going: rewritten in place
    dup_shard = drill.send("rmsml.runs.shard", task_id=shard_ids[0], run_id=run_id, shard_no=0, schedule=SCHEDULE)
    first = drill.check(run_id, "succeeded", owner=run_id)
    assert dup_shard.get(timeout=60)["status"] == "succeeded"
    wait_for(lambda: drill.q("SELECT attempts, status FROM ml_run_shard WHERE run_id = %(id)s AND shard_no = 0",
                             id=run_id) == [(2, "succeeded")], 30, "shard 0 to have run twice")

    # after the run closed: finish and a shard again, by their task ids, and the tasks called anew
    for task_id in (started["finish_task_id"], shard_ids[1]):
        drill.client.AsyncResult(task_id).forget()
    dup_finish = drill.send("rmsml.runs.finish", task_id=started["finish_task_id"], run_id=run_id)
    late_shard = drill.send("rmsml.runs.shard", task_id=shard_ids[1], run_id=run_id, shard_no=1, schedule=SCHEDULE)
    fresh_finish = drill.send("rmsml.runs.finish", run_id=run_id)
    records = [r.get(timeout=60) for r in (dup_finish, fresh_finish)]
    assert late_shard.get(timeout=60)["status"] == "succeeded"
    assert drill.q("SELECT attempts FROM ml_run_shard WHERE run_id = %(id)s AND shard_no = 1", id=run_id) == [(2,)]
    assert all(r["status"] == "succeeded" and r["rows_written"] == {
        k: v for k, v in first["rows_written"].items()} for r in records)
    assert records[0]["webhook_deliveries"] == records[1]["webhook_deliveries"]
    after = drill.check(run_id, "succeeded", owner=run_id)
    assert after["finished_at"] == first["finished_at"]  # the closed record, not counted again
    assert drill.q("SELECT count(*) FROM ml_run") == [(1,)]
    time.sleep(1)  # a second send of the event would have arrived by now
    drill.check(run_id, "succeeded", owner=run_id)


def _first_run(drill) -> tuple[str, dict]:
    """The run of the first scenario (as of AS_OF['first']) and its record."""
    (rid,), = drill.q("SELECT id FROM ml_run WHERE as_of = %(t)s", t=AS_OF["first"])
    return str(rid), drill.run_row(str(rid))


def _whole_run_rows(drill) -> dict:
    """Rows a whole run writes per type (the first run's, before it was re-run)."""
    (rows,), = drill.q("SELECT rows_written FROM ml_run WHERE status = 'succeeded' AND rows_written <> '{}' "
                       "AND schedule = %(s)s ORDER BY started_at LIMIT 1", s=SCHEDULE)
    return rows


def _succeeded_whole(drill: Drill, run_id: str) -> dict:
    """The run closed ``succeeded`` (one webhook-id, no duplicate keys, see ``Drill.check``), with
    every row the first run wrote, no failure and every shard succeeded; its record."""
    record = drill.check(run_id, "succeeded", owner=run_id)
    assert record["rows_written"] == _whole_run_rows(drill) and record["failed"] == []
    assert set(drill.shard_status(run_id).values()) == {"succeeded"}
    return record


def test_replica_connection_terminated_mid_query_is_retried(drill):
    """pg_terminate_backend on the reader's backend while a shard's replica query waits on a table
    lock the test holds: the read is retried (in place or by the shard task) and the run succeeds
    whole, not partial."""
    marks = drill.log_marks()
    started = drill.start(AS_OF["replica_cut"])
    run_id = started["run_id"]
    with drill.holding("orders_orderitem", "ACCESS EXCLUSIVE", db="replica"):
        pids = wait_for(lambda: drill.blocked("rms-ml-reader", "replica"), 30, "a shard's replica query to wait")
        assert drill.q("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest(%(pids)s::int[]) pid",
                       db="postgres", pids=pids) == [(len(pids),)]
    _succeeded_whole(drill, run_id)
    logged = drill.logged_since(marks)
    assert "transient error" in logged and "OperationalError" in logged, logged[-5000:]


def test_postgres_restarted_mid_write_is_retried(drill):
    """PostgreSQL restarted (fast: connections cut, open transactions rolled back) while a shard's
    writer waits on the lock of m_l_predictions: the shard is retried and the run succeeds."""
    marks = drill.log_marks()
    started = drill.start(AS_OF["pg_restart"])
    run_id = started["run_id"]
    with drill.holding("m_l_predictions", "EXCLUSIVE", db="ml"):
        wait_for(lambda: drill.blocked("rms-ml-writer", "ml"), 30, "a shard's writer to wait on m_l_predictions")
        drill.pg.restart()
    _succeeded_whole(drill, run_id)
    assert max(n for (n,) in drill.q("SELECT attempts FROM ml_run_shard WHERE run_id = %(id)s", id=run_id)) >= 2
    assert "left to the shard's retry" in drill.logged_since(marks)


def test_redis_restarted_mid_run_with_its_append_only_file_loses_nothing(drill):
    """Redis restarted (SIGTERM, append-only file kept, as the compose service runs it) while two
    shards write and two wait in the queue: the queued shards survive the restart, the workers
    reconnect, the shards in flight finish, and the run succeeds whole."""
    marks = drill.log_marks()
    started = drill.start(AS_OF["redis_restart"])
    run_id = started["run_id"]
    with drill.holding("m_l_predictions", "EXCLUSIVE", db="ml"):
        wait_for(lambda: len(drill.blocked("rms-ml-writer", "ml")) == 2, 30, "both workers' writers to wait")
        drill.broker.restart()
    _succeeded_whole(drill, run_id)
    assert "Connection to broker lost" in drill.logged_since(marks)  # the workers did see it go


def _wipe_restart(broker: RedisServer) -> None:
    """Restart Redis with nothing of what it held: queued and unacknowledged messages, chord
    counters, results and the run lock are gone (a broker without persistence, or a new one)."""
    broker.stop()
    for path in broker.base.iterdir():
        if path.name.startswith("appendonly") or path.name.endswith(".rdb"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    broker.start()


def test_redis_lost_mid_run_strands_the_run_closed_partial_and_none_beside_it(drill):
    """Redis restarted without its data while two shards write and two wait in the queue: the two
    in flight commit, the two queued vanish, the chord never calls finish and the run lock is gone.
    A trigger meanwhile is skipped (the run table still says a run is going: begin_locked checks
    it); once nothing of the run has worked for RMSML_TASKS__STRANDED_AFTER_S, beat's sweep
    (rmsml.webhooks.deliver_due) closes it as partial with what it committed and sends its event;
    the next trigger then starts a run. Meanwhile the daily schedule runs end to end (the lock is
    per schedule) and is left alone by the sweep (``_daily_run_checked``)."""
    import redis

    started = drill.start(AS_OF["stranded"])
    run_id = started["run_id"]
    # both workers mid-write (on a lock the test holds), the other two shards queued
    with drill.holding("m_l_predictions", "EXCLUSIVE", db="ml"):
        wait_for(lambda: len(drill.blocked("rms-ml-writer", "ml")) == 2, 30, "both workers' writers to wait")
        _wipe_restart(drill.broker)
    client = redis.Redis.from_url(drill.env["RMSML_BROKER__URL"])
    try:
        assert client.get(f"rmsml:run-lock:{SCHEDULE}") is None
    finally:
        client.close()
    wait_for(lambda: sorted(drill.shard_status(run_id).values()) == ["pending", "pending", "succeeded", "succeeded"],
             60, "the two shards in flight to commit")
    committed = dict(drill.q("SELECT prediction_type, count(*) FROM m_l_predictions WHERE run_id = %(id)s "
                             "GROUP BY 1", id=run_id))
    assert committed and drill.run_status(run_id) == "running"

    # a trigger while the stranded run is recorded running: skipped, not run beside it
    skipped = drill.start(AS_OF["after_stranded"])
    assert skipped["status"] == "skipped" and skipped["running_run_id"] == run_id, skipped
    assert drill.q("SELECT count(*) FROM ml_run WHERE status = 'running'") == [(1,)]
    # meanwhile the daily schedule runs end to end, cold (its own lock: the stranded monthly run
    # holds only its schedule); the sweep below must leave this live run alone
    daily = drill.start(AS_OF["daily"], schedule="daily")
    assert daily["status"] == "started" and daily["shards"] == RESTAURANTS, daily

    # stranded: nothing of the run has started for STRANDED_AFTER_S (real time, not aged)
    waited = time.monotonic()
    wait_for(lambda: drill.q("SELECT heartbeat_at < now() - make_interval(secs => %(s)s) FROM ml_run "
                             "WHERE id = %(id)s", s=STRANDED_AFTER_S, id=run_id) == [(True,)],
             STRANDED_AFTER_S + 10, "the run to be silent for STRANDED_AFTER_S", interval=1)
    # the sweep beat runs every few minutes closes it, without waiting for a trigger, and sends its event
    swept = drill.send("rmsml.webhooks.deliver_due").get(timeout=60)
    assert swept["closed_runs"] == [run_id] and swept["enqueued"] >= 1, swept
    assert time.monotonic() - waited < STRANDED_AFTER_S + 10
    record = drill.check(run_id, "partial")
    after = drill.start(AS_OF["after_stranded"])
    assert after["status"] == "started", after
    assert record["rows_written"] == committed
    assert sorted(f["shard"] for f in record["failed"]) == sorted(
        n for n, s in drill.shard_status(run_id).items() if s == "failed")
    assert len(record["failed"]) == 2 and all("abandoned" in f["error"] for f in record["failed"])
    drill.check(after["run_id"], "succeeded", owner=after["run_id"])
    (closed_at, started_at), = drill.q("SELECT (SELECT finished_at FROM ml_run WHERE id = %(a)s), "
                                       "(SELECT started_at FROM ml_run WHERE id = %(b)s)", a=run_id, b=after["run_id"])
    assert closed_at <= started_at  # closed before the next run began: never two at once
    _daily_run_checked(drill, daily["run_id"])


def _daily_run_checked(drill: Drill, run_id: str) -> None:
    """The daily schedule's run: succeeded (one webhook-id, no duplicate keys, every row of the
    daily types its own: ``Drill.check``), every shard succeeded, the demand rows of every
    restaurant, and the units of modules the replica lacks skipped by name."""
    record = drill.check(run_id, "succeeded", owner=run_id)
    assert record["failed"] == [] and set(drill.shard_status(run_id).values()) == {"succeeded"}
    rows = record["rows_written"]
    assert rows["demand_daily"] == 28 * RESTAURANTS and rows["demand_hourly"] == 168 * RESTAURANTS, rows
    assert rows["item_demand_daily"] > 0, rows
    (committed,), = drill.q("SELECT count(*) FROM m_l_predictions WHERE run_id = %(id)s", id=run_id)
    assert committed == sum(rows.values())
    (skipped,), = drill.q("SELECT modules_skipped FROM ml_run WHERE id = %(id)s", id=run_id)
    assert {"stock_daily", "stockout", "reorder", "prep_time"} <= set(skipped), skipped


def test_old_run_rerun_by_id_keeps_newer_rows(drill):
    """The first run re-run under its own id and as-of (earlier than every run since): no entity
    goes back to its older predictions, the run record says that newer rows were kept, and the RMS
    hears of the re-run's outcome once."""
    first_id, _ = _first_run(drill)
    (newest,), = drill.q("SELECT id FROM ml_run WHERE status = 'succeeded' AND schedule = %(s)s "
                         "ORDER BY as_of DESC LIMIT 1", s=SCHEDULE)
    newest = str(newest)
    if newest == first_id:  # run alone (-k): a newer run first
        newest = drill.start(AS_OF["newer"])["run_id"]
        drill.check(newest, "succeeded", owner=newest)
    before = drill.q("SELECT prediction_type, entity_id, target_start, run_id, generated_at FROM m_l_predictions "
                     "ORDER BY 1, 2, 3")
    rerun = drill.start(AS_OF["first"], run_id=first_id)
    assert rerun["status"] == "started" and rerun["run_id"] == first_id
    record = drill.check(first_id, "succeeded", owner=newest)
    assert drill.q("SELECT prediction_type, entity_id, target_start, run_id, generated_at FROM m_l_predictions "
                   "ORDER BY 1, 2, 3") == before  # not a row touched
    assert record["rows_written"] == {}
    assert any("kept the rows of a run with a later as-of" in m for m in record["messages"]), record["messages"]
    assert drill.q("SELECT count(*) FROM ml_run WHERE id = %(id)s", id=first_id) == [(1,)]


def test_worker_killed_mid_shard_is_redelivered(drill):
    """kill -9 of a worker (its pool child too) while its shard writes: the shard's message was
    never acknowledged, so Redis hands it to the other worker after the visibility timeout; it is
    rewritten without duplicates and the run succeeds. Last, as it leaves one worker."""
    started = drill.start(AS_OF["killed"])
    assert started["status"] == "started", started
    run_id = started["run_id"]
    victim = drill.workers[0]
    with drill.holding("m_l_predictions", "EXCLUSIVE", db="ml"):
        wait_for(lambda: len(drill.blocked("rms-ml-writer", "ml")) == 2, 30, "both workers' writers to wait")
        killed_at = time.monotonic()
        victim.kill()
    assert not victim.alive()
    record = drill.check(run_id, "succeeded", owner=run_id)
    assert record["failed"] == []
    assert time.monotonic() - killed_at >= int(drill.env["RMSML_BROKER__VISIBILITY_TIMEOUT_S"]) - 1
    attempts = sorted(n for (n,) in drill.q("SELECT attempts FROM ml_run_shard WHERE run_id = %(id)s", id=run_id))
    assert attempts == [1, 1, 1, 2], attempts  # the killed shard ran again, once
    (rows,), = drill.q("SELECT count(*) FROM m_l_predictions WHERE run_id = %(id)s", id=run_id)
    assert record["rows_written"] == _whole_run_rows(drill) and rows == sum(record["rows_written"].values())
