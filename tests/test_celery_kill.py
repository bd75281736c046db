"""A worker SIGKILLed in the middle of a shard: earlier rows stay readable, the run completes.

Recovery path under test: acks late. The killed worker never acknowledged its shard message, so
Redis hands it to another worker once the visibility timeout has passed (shortened here to 15 s,
with the unacked sweep every second); the shard is rewritten by the upserting writer, the chord
completes and the finishing step closes the run. The whole process group is killed, pool child
included, as a container or machine dying would.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.celery_harness import flush_redis, start_worker, stop_shared_workers, wait_for
from worker import db, runs
from worker.celery_app import app
from worker.locks import RunLock

EARLIER = "2026-10-30T05:15:00Z"
AS_OF = "2026-10-31T05:15:00Z"
LIMITS = {
    "RMSML_SCHEDULES__SHARD_SIZE": "1",
    "RMSML_BROKER__VISIBILITY_TIMEOUT_S": "15",
    "RMSML_BROKER__UNACKED_RESTORE_INTERVAL_S": "1",
    "RMSML_BROKER__UNACKED_RESTORE_THROTTLE": "1",
    "RMSML_TASKS__SHARD_SOFT_TIME_LIMIT_S": "12",
    "RMSML_TASKS__SHARD_TIME_LIMIT_S": "14",
}


def q(sql: str, **params):
    with db.predictions_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


def rows_by_restaurant_and_run() -> dict[tuple[int, str], int]:
    return {(r, str(run)): n for r, run, n in q(
        "SELECT restaurant_id, run_id, count(*) FROM m_l_predictions GROUP BY 1, 2")}


@pytest.fixture()
def quiet_broker(seeded_replica, clean_predictions):
    stop_shared_workers()  # no other worker may take the shards
    flush_redis()


def test_killed_worker_mid_shard_leaves_rows_readable_and_the_run_completes_once(quiet_broker, tmp_path):
    earlier = runs.execute_run("monthly", EARLIER)
    baseline = rows_by_restaurant_and_run()
    assert earlier["status"] == "succeeded" and baseline

    doomed = start_worker("doomed", tmp_path, {**LIMITS, "RMSML_TEST_SHARD_PAUSE_S": "4"})
    started = app.send_task("rmsml.runs.start", kwargs={"schedule": "monthly", "as_of": AS_OF}).get(timeout=60)
    run_id, shard_ids = started["run_id"], started["shard_task_ids"]
    assert len(shard_ids) >= 2
    wait_for(lambda: q("SELECT status FROM ml_run_shard WHERE run_id = :id AND shard_no = 0", id=run_id)
             == [("succeeded",)], 60, "shard 0 to be written")
    wait_for(lambda: f"[{shard_ids[1]}] received" in doomed.log(), 30, "shard 1 to reach the doomed worker")
    doomed.kill()  # SIGKILL, mid-shard: shard 1 was received and not acknowledged

    # Meanwhile the RMS reads: shard 0's restaurant has the new run's rows, the others still the
    # earlier run's, every entity whole.
    first = int(q("SELECT restaurant_ids->>0 FROM ml_run_shard WHERE run_id = :id AND shard_no = 0", id=run_id)[0][0])
    during = rows_by_restaurant_and_run()
    old_id = str(earlier["id"])
    for (restaurant, rid), n in baseline.items():
        if restaurant == first:
            assert during.get((restaurant, run_id)) == n and (restaurant, rid) not in during
        else:
            assert during.get((restaurant, rid)) == n and rid == old_id
    assert q("SELECT status FROM ml_run WHERE id = :id", id=run_id) == [("running",)]
    assert RunLock.from_settings().holder("monthly") == run_id  # a new trigger still waits

    rescuer = start_worker("rescuer", tmp_path, LIMITS)
    try:
        record = app.AsyncResult(started["finish_task_id"]).get(timeout=120)
    finally:
        rescuer.stop()
    assert record["status"] == "succeeded", record
    assert f"[{shard_ids[1]}] received" in rescuer.log()  # redelivered, not lost
    after = rows_by_restaurant_and_run()
    assert after == {(restaurant, run_id): n for (restaurant, _), n in baseline.items()}
    assert sum(record["rows_written"].values()) == sum(baseline.values())
    dupes = q("SELECT count(*) - count(DISTINCT (prediction_type, entity_type, entity_id, target_start)) "
              "FROM m_l_predictions")
    assert dupes == [(0,)]
    assert q("SELECT count(*) FROM ml_run") == [(2,)]
    assert RunLock.from_settings().holder("monthly") is None
    received = re.findall(r"rmsml\.runs\.shard\[([^\]]+)\] received", doomed.log() + rescuer.log())
    assert sorted(set(received)) == sorted(shard_ids)
