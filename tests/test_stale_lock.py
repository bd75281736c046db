"""A run lock whose holder died is taken over by the next start, without beat (issue 25, item 3).

Before: ``worker run`` SIGKILLed mid-run left its run ``running`` and its Redis lock alive (TTL 2 h);
the next ``run`` exited 3 "still holds the lock" even after ``STRANDED_AFTER_S``, because the
start closed abandoned runs only after taking the lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from tests.conftest import cleared_run_lock
from worker import db

AS_OF = "2026-11-01T05:15:00Z"
STRANDED_AFTER_S = 60  # the setting's minimum

CHILD = textwrap.dedent(f"""
    import os, signal
    from worker.locks import RunLock
    from worker.runs import execute_run

    def progress(step, done, total):
        if step == "shards" and done == 1:  # one shard written, the next one never starts
            os.kill(os.getpid(), signal.SIGKILL)

    execute_run("monthly", "{AS_OF}", [1, 2], trigger="cli", progress=progress, lock=RunLock.from_settings())
""")


@pytest.fixture()
def stranded_settings(monkeypatch):
    from worker.settings import get_settings

    monkeypatch.setenv("RMSML_TASKS__STRANDED_AFTER_S", str(STRANDED_AFTER_S))
    monkeypatch.setenv("RMSML_SCHEDULES__SHARD_SIZE", "1")
    get_settings.cache_clear()
    yield get_settings()
    monkeypatch.undo()
    get_settings.cache_clear()


def _run(run_id: str) -> dict:
    with db.predictions_engine().connect() as conn:
        return dict(conn.execute(text("SELECT * FROM ml_run WHERE id = :id"), {"id": run_id}).mappings().one())


def test_a_sigkilled_in_process_run_is_taken_over_after_stranded_after_s(seeded_replica, clean_predictions,
                                                                         stranded_settings):
    from worker.run_start import LockHeld
    from worker.runs import execute_run

    with cleared_run_lock("monthly") as lock:
        killed = subprocess.run([sys.executable, "-c", CHILD], env=dict(os.environ), capture_output=True, text=True,
                                timeout=300)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        dead = lock.holder("monthly")
        assert dead and _run(dead)["status"] == "running"
        killed_at = time.monotonic()

        # Still inside STRANDED_AFTER_S: the holder may be alive, nothing is started.
        early = execute_run("monthly", AS_OF, [1, 2], trigger="cli", lock=lock)
        assert isinstance(early, LockHeld) and early.holder == dead

        # Past it (no beat, no sweep: a cron-only install): the next start takes the lock over.
        record = None
        while time.monotonic() - killed_at < STRANDED_AFTER_S + 40:
            attempt = execute_run("monthly", AS_OF, [1, 2], trigger="cli", lock=lock)
            if not isinstance(attempt, LockHeld):
                record = attempt
                break
            time.sleep(5)
        assert record is not None, "the dead run's lock was never taken over"
        assert time.monotonic() - killed_at >= STRANDED_AFTER_S - 12  # not before its silence proved it dead
        assert record["status"] == "succeeded"
        old = _run(dead)
        assert old["status"] == "partial" and old["finished_at"] is not None, old
        with db.predictions_engine().connect() as conn:
            errors = conn.execute(text("SELECT error FROM ml_run_shard WHERE run_id = :id AND status = 'failed'"),
                                  {"id": dead}).scalars().all()
        assert len(errors) == 1 and "stopped beating" in errors[0]
        assert lock.holder("monthly") is None  # the new run freed it at its end


def test_a_stranded_celery_run_holding_the_lock_is_taken_over_without_the_sweep(seeded_replica, clean_predictions,
                                                                              stranded_settings):
    """A run whose workers all died (Redis lived) keeps its lock; with no beat running the sweep,
    the next start closes it and takes the lock (before: exit 3 until the lock's TTL)."""
    from worker.records import RunRecords
    from worker.run_start import LockHeld, begin_locked

    dead = str(uuid.uuid4())
    records = RunRecords(db.predictions_engine())
    records.create_run(uuid.UUID(dead), "monthly", datetime(2026, 11, 1, 5, 15, tzinfo=timezone.utc), trigger="beat",
                       restaurant_ids=[2], prediction_types=["price_recommendation"])
    records.plan_shards(dead, [[2]])
    with cleared_run_lock("monthly") as lock:
        assert lock.acquire("monthly", dead).acquired
        fresh = str(uuid.uuid4())
        held = begin_locked(lock, "monthly", AS_OF, [2], trigger="cli", run_id=fresh)
        assert isinstance(held, LockHeld) and held.holder == dead  # heard from a moment ago: alive
        with db.predictions_engine().begin() as conn:
            conn.execute(text("UPDATE ml_run SET heartbeat_at = now() - interval '2 hours' WHERE id = :id"),
                         {"id": dead})
        plan = begin_locked(lock, "monthly", AS_OF, [2], trigger="cli", run_id=fresh)
        assert not isinstance(plan, LockHeld) and plan.run_id == fresh
        assert lock.holder("monthly") == fresh
        assert _run(dead)["status"] == "failed"
