"""The Celery path of the completion webhook: a real worker on the ``webhooks`` queue retries with
backoff as the sender's results say, and an admin's redelivery task (as Flower would trigger it)
sends an exhausted delivery again with the same ``webhook-id``."""

from __future__ import annotations

import json

import pytest

from tests.celery_harness import flush_redis, start_worker, wait_for
from tests.test_webhooks import ScriptedReceiver, finished_run, gaps, hook_settings, new_secret
from tasks.webhooks import enqueue
from webhooks import deliveries, records
from worker import db
from worker.celery_app import app

BACKOFF = {"RMSML_WEBHOOKS__BACKOFF_BASE_S": "0.2", "RMSML_WEBHOOKS__MAX_ATTEMPTS": "3"}


@pytest.fixture(scope="module")
def receiver():
    box = ScriptedReceiver([new_secret()])
    yield box
    box.close()


@pytest.fixture(scope="module")
def hooks_worker(receiver, predictions_url, tmp_path_factory):
    flush_redis()
    env = {
        "RMSML_WEBHOOKS__RECEIVERS": json.dumps(
            [{"name": "rms", "url": receiver.url(), "secrets": receiver.secrets}]
        ),
        "RMSML_WEBHOOKS__TIMEOUT_S": "1",
        **BACKOFF,
    }
    proc = start_worker("hooks", tmp_path_factory.mktemp("celery-webhooks"), env, queues="webhooks")
    yield proc
    proc.stop()


@pytest.fixture()
def settings(receiver):
    return hook_settings([("rms", receiver.url(), receiver.secrets)], backoff_base_s=0.2, max_attempts=3)


def status_of(delivery_id: str, wanted: str):
    def check():
        row = records.get_delivery(db.predictions_engine(), delivery_id)
        return row if row and row["status"] == wanted else None

    return check


def test_worker_retries_500_twice_then_delivers(hooks_worker, receiver, settings, clean_predictions):
    engine = db.predictions_engine()
    receiver.requests.clear()
    receiver.script[:] = [("status", 500), ("status", 500)]
    [delivery_id] = deliveries.emit_run_completed(
        finished_run(engine), send="enqueue", engine=engine, settings=settings, enqueue=enqueue
    )

    row = wait_for(status_of(delivery_id, "delivered"), 60, "the worker to deliver")
    assert row["attempt_count"] == 3
    assert len(receiver.requests) == 3 and all(r.verified for r in receiver.requests)
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery_id}
    first_gap, second_gap = gaps(receiver.requests)
    assert first_gap >= 0.1 and second_gap >= 0.2  # half the nominal 0.2 s, then 0.4 s
    assert [a["response_status"] for a in records.list_attempts(engine, delivery_id)] == [500, 500, 200]


def test_exhausted_delivery_is_redelivered_by_the_admin_task(hooks_worker, receiver, settings, clean_predictions):
    engine = db.predictions_engine()
    receiver.requests.clear()
    receiver.default = ("status", 503)
    record = finished_run(engine)
    [delivery_id] = deliveries.emit_run_completed(
        record, send="enqueue", engine=engine, settings=settings, enqueue=enqueue
    )
    wait_for(status_of(delivery_id, "exhausted"), 60, "the delivery to exhaust its 3 attempts")
    assert len(receiver.requests) == 3
    assert [d["id"] for d in records.list_deliveries(engine, failed_only=True)] == [delivery_id]

    receiver.default = None
    result = app.send_task("rmsml.webhooks.redeliver", kwargs={"run_id": str(record["id"])}).get(timeout=30)
    assert result == {"redelivered": [delivery_id]}
    row = wait_for(status_of(delivery_id, "delivered"), 60, "the redelivery")
    assert row["attempt_count"] == 4
    assert receiver.requests[-1].verified and receiver.requests[-1].headers["webhook-id"] == delivery_id
    assert len(receiver.events) >= 1


def test_sweep_sends_deliveries_left_pending(hooks_worker, receiver, settings, clean_predictions):
    """A delivery recorded but never handed to the queue (broker down at the time, inline budget
    spent) is found by the sweep beat runs, and delivered."""
    engine = db.predictions_engine()
    receiver.requests.clear()
    receiver.default = None
    [delivery_id] = deliveries.emit_run_completed(finished_run(engine), send="none", engine=engine, settings=settings)
    assert records.get_delivery(engine, delivery_id)["status"] == "pending" and receiver.requests == []

    result = app.send_task("rmsml.webhooks.deliver_due", kwargs={"overdue_s": 0}).get(timeout=30)
    assert result == {"due": 1, "enqueued": 1}
    wait_for(status_of(delivery_id, "delivered"), 60, "the swept delivery")
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery_id]
