"""Runs through a real Celery worker pair on the test Redis and PostgreSQL.

Two workers (one process each) consume the same queues; every shard pauses a second
(``RMSML_TEST_SHARD_PAUSE_S``, ``tests/celery_drill.py``) so that both workers are needed for a run and a second trigger
arrives while the first run is still going. Runs use the monthly schedule: its prediction type is
quick to compute, and the orchestration around it is the same for every schedule.
"""

from __future__ import annotations

import pickle

import pytest
from sqlalchemy import text

from tests.celery_harness import (
    WORKER_ENV,
    flush_redis,
    predictions_count,
    runs_table,
    shared_workers,
    start_beat,
    wait_for,
)
from worker import db, runs
from worker.celery_app import app
from worker.locks import RunLock

AS_OF = "2026-10-31T04:15:00Z"
START = "rmsml.runs.start"


@pytest.fixture(scope="module")
def workers(seeded_replica, predictions_url, tmp_path_factory):
    flush_redis()
    return shared_workers(tmp_path_factory.mktemp("celery-workers"), WORKER_ENV)


def finish_of(started: dict, timeout: float = 90) -> dict:
    return app.AsyncResult(started["finish_task_id"]).get(timeout=timeout)


def test_triggered_run_fans_out_over_both_workers_and_matches_the_in_process_run(workers, clean_predictions):
    started = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF, "trigger": "test"}).get(timeout=60)
    assert started["status"] == "started"
    assert started["shards"] >= 2  # shard_size 1 in the workers: one shard per valid restaurant
    record = finish_of(started)
    shard_results = [app.AsyncResult(t).get(timeout=10) for t in started["shard_task_ids"]]

    assert record["id"] == started["run_id"] and record["status"] != "failed"
    assert sum(record["rows_written"].values()) == predictions_count() > 0
    assert {r["worker"].split("@")[0] for r in shard_results} == {"w1", "w2"}
    assert RunLock.from_settings().holder("monthly") is None  # released by the finishing step
    with db.predictions_engine().connect() as conn:
        shards = conn.execute(
            text("SELECT shard_no, status, attempts FROM ml_run_shard WHERE run_id = :id ORDER BY shard_no"),
            {"id": started["run_id"]},
        ).all()
        trigger = conn.execute(text("SELECT trigger FROM ml_run WHERE id = :id"), {"id": started["run_id"]}).scalar()
    assert [s[0] for s in shards] == list(range(started["shards"])) == list(range(len(record["restaurant_ids"])))
    assert all(s[1] == "succeeded" and s[2] == 1 for s in shards)
    assert trigger == "test"
    # The finishing step emitted the completion event: one delivery per receiver, for this run.
    assert len(record["webhook_deliveries"]) == 1
    with db.predictions_engine().connect() as conn:
        deliveries = conn.execute(text("SELECT id, run_id::text FROM ml_webhook_delivery")).all()
    assert deliveries == [(record["webhook_deliveries"][0], started["run_id"])]

    # The same schedule in-process (the CLI path) gives the same record: one run loop, two drivers.
    in_process = runs.execute_run("monthly", AS_OF)
    assert in_process["rows_written"] == record["rows_written"]
    assert in_process["status"] == record["status"]


def test_two_concurrent_triggers_give_one_run(workers, clean_predictions):
    first = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF})
    second = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF, "trigger": "flower"})
    results = [first.get(timeout=60), second.get(timeout=60)]
    started = [r for r in results if r["status"] == "started"]
    skipped = [r for r in results if r["status"] == "skipped"]
    assert len(started) == 1 and len(skipped) == 1, results
    assert skipped[0]["running_run_id"] == started[0]["run_id"]
    assert "still running" in skipped[0]["reason"]
    finish_of(started[0])
    assert [str(r["id"]) for r in runs_table()] == [started[0]["run_id"]]

    # Once it has finished, the schedule can run again.
    again = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF}).get(timeout=60)
    assert again["status"] == "started"
    finish_of(again)


def test_redelivered_start_message_reenters_its_own_run(workers, clean_predictions):
    """A start message delivered twice (same task id) is one run, written once."""
    task_id = "6f1b0c3e-0000-4000-8000-00000000abcd"
    one = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF}, task_id=task_id).get(timeout=60)
    finish_of(one)
    rows = predictions_count()
    app.AsyncResult(task_id).forget()  # as if the first delivery died before storing a result
    two = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF}, task_id=task_id).get(timeout=60)
    assert two["run_id"] == one["run_id"] == task_id
    # its shards went out once: the second delivery reports the first dispatch instead of resending
    assert two["redelivered"] is True and two["shard_task_ids"] == one["shard_task_ids"]
    finish_of(two)
    assert [str(r["id"]) for r in runs_table()] == [task_id]
    assert predictions_count() == rows
    with db.predictions_engine().connect() as conn:
        attempts = conn.execute(text("SELECT attempts FROM ml_run_shard WHERE run_id = :r"), {"r": task_id}).scalars().all()
    assert attempts and set(attempts) == {1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "hourly"}, "unknown schedule 'hourly'"),
        ({"schedule": "monthly", "restaurant_ids": [1, 987654]}, "unknown restaurant id(s): [987654]"),
        ({"schedule": "monthly", "restaurant_ids": "7"}, "restaurant_ids must be a list of integers"),
        ({"schedule": "monthly", "as_of": "last tuesday"}, "as_of is not an ISO 8601 instant"),
    ],
)
def test_bad_input_fails_the_task_clearly_records_the_run_and_writes_nothing(workers, clean_predictions, kwargs, message):
    result = app.send_task(START, kwargs={**kwargs, "as_of": kwargs.get("as_of", AS_OF)})
    with pytest.raises(Exception) as failure:
        result.get(timeout=60)
    assert type(failure.value).__name__ == "RunInputError"
    assert message in str(failure.value)
    assert result.state == "FAILURE"
    recorded = runs_table()
    assert len(recorded) == 1, recorded
    [record] = recorded
    assert record["status"] == "failed" and message in record["error"] and str(record["id"]) == result.id
    assert predictions_count() == 0
    assert RunLock.from_settings().holder("monthly") is None
    assert all(w.alive() for w in workers)


def test_pickled_message_is_refused_and_the_worker_keeps_working(workers, clean_predictions):
    """Celery accepts JSON only: a pickle message never runs, and the worker is unharmed."""
    refused = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF}, serializer="pickle")
    wait_for(lambda: any("untrusted content" in w.log() or "refus" in w.log().lower() for w in workers), 30,
             "a worker to refuse the pickle message")
    assert refused.state == "PENDING"
    assert runs_table() == [] and predictions_count() == 0
    # A JSON argument that is not JSON at all cannot even be sent.
    with pytest.raises(Exception, match="not JSON serializable|EncodeError|serializ"):
        app.send_task(START, kwargs={"schedule": "monthly", "as_of": pickle}).get(timeout=5)
    ok = app.send_task(START, kwargs={"schedule": "monthly", "as_of": AS_OF, "restaurant_ids": [1]}).get(timeout=60)
    assert finish_of(ok)["restaurant_ids"] == [1]
    assert all(w.alive() for w in workers)


def test_beat_with_a_short_interval_fires_runs_that_never_overlap(workers, clean_predictions, tmp_path):
    """Beat fires every 2 s while a run lasts longer: the lock turns the extra fires into no-ops."""
    beat = start_beat(tmp_path, {"RMSML_SCHEDULES__MONTHLY": "every 2s"})
    try:
        wait_for(lambda: any(r["trigger"] == "beat" and r["status"] != "running" for r in runs_table()), 90,
                 "a beat-triggered run to finish")
        wait_for(lambda: beat.log().count("Sending due task run-monthly-predictions") >= 3, 30, "beat to fire again")
    finally:
        beat.stop()
    wait_for(lambda: all(r["status"] != "running" for r in runs_table()), 90, "beat's last run to finish")
    app.control.purge()
    recorded = runs_table()
    assert all(r["trigger"] == "beat" and r["schedule"] == "monthly" for r in recorded)
    assert beat.log().count("Sending due task run-monthly-predictions") > len(recorded)
    for earlier, later in zip(recorded, recorded[1:]):
        assert later["started_at"] >= earlier["finished_at"], "two runs of one schedule overlapped"


def test_cli_trigger_runs_on_the_workers_and_reports_bad_input(workers, clean_predictions):
    import json
    import subprocess
    import sys

    from tests.celery_harness import ROOT

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "worker", "trigger", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=180)

    done = cli("--schedule", "monthly", "--as-of", AS_OF, "--restaurant", "2", "--wait", "--timeout", "120")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)
    assert record["restaurant_ids"] == [2] and record["status"] != "failed"
    [row] = runs_table()
    assert row["trigger"] == "cli" and str(row["id"]) == record["id"]
    bad = cli("--schedule", "hourly", "--wait", "--timeout", "60")
    assert bad.returncode == 2 and "unknown schedule 'hourly'" in bad.stderr
