"""Celery tasks for the completion webhook, on the ``webhooks`` queue. Thin: they parse ids, hand
the engine and settings to ``webhooks.deliveries``, which the CLI calls too, and hand it
``enqueue`` (this module's deliver task), since the package below cannot import the task.

Why retries are scheduled from the result and not by ``autoretry_for``: the sender never raises,
and the wait depends on the answer (``Retry-After`` of a 429, the attempt number). The attempt
budget lives on the delivery row, not in the task, so a redelivered message or an admin's
redelivery continue the same count; a message that arrives before its delivery is due, or twice,
finds nothing to claim and ends. Only errors that may pass on their own (a database or Redis
that blinked, ``worker.failures.is_transient``) are retried by the decorator.
"""

from __future__ import annotations

from typing import Any

from tasks.base import task
from webhooks import deliveries, records
from worker import db, run_start
from worker.catalog import SCHEDULES
from worker.locks import RunLock
from worker.settings import get_settings


# Routed to the ``webhooks`` queue by name (worker.queues.TASK_ROUTES: ``rmsml.webhooks.*``).
@task("rmsml.webhooks.deliver", soft_time_limit=120, time_limit=150, max_retries=60)
def deliver(self, delivery_id: str) -> dict[str, Any]:
    """One attempt of one delivery; schedules the next one itself when the delivery stays pending."""
    result = deliveries.attempt_delivery(
        str(delivery_id), engine=db.predictions_engine(), settings=get_settings().webhooks
    )
    if result.attempt_no is not None and result.delivery_status == "pending":
        raise self.retry(countdown=result.retry_in_s or 0.0)
    send = result.send
    return {
        "delivery_id": result.delivery_id,
        "attempt_no": result.attempt_no,
        "status": result.delivery_status,
        "response_status": send.status_code if send else None,
        "error": send.error if send else None,
    }


def enqueue(delivery_id: str, countdown_s: float) -> object:
    """``webhooks.deliveries.Enqueue`` for the Celery path: one ``deliver`` message."""
    return deliver.apply_async(args=[delivery_id], countdown=countdown_s)


@task("rmsml.webhooks.redeliver", soft_time_limit=60, time_limit=90, max_retries=3)
def redeliver(self, delivery_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """An admin's redelivery of one delivery or of every undelivered one of a run (from Flower:
    ``POST /api/task/async-apply/rmsml.webhooks.redeliver`` with ``{"kwargs": {"run_id": "…"}}``)."""
    ids = deliveries.redeliver(
        delivery_id,
        run_id=run_id,
        send="enqueue",
        engine=db.predictions_engine(),
        settings=get_settings().webhooks,
        enqueue=enqueue,
    )
    return {"redelivered": ids}


# No retry: beat sends the next sweep within minutes.
@task("rmsml.webhooks.deliver_due", soft_time_limit=60, time_limit=90, max_retries=0)
def deliver_due(self, overdue_s: float = 120.0) -> dict[str, Any]:
    """The safety net for beat: re-enqueue pending deliveries whose next attempt is overdue (left by
    the inline budget, a broker outage or a worker that died mid-attempt).

    First it closes stranded runs (``worker.run_start.close_abandoned_runs``, every schedule): a run
    whose queued shards vanished with the broker's memory, or whose workers all died, would
    otherwise stay ``running`` until the next trigger of its schedule (a day for the daily one);
    swept, it is closed within ``stranded_after_s`` plus one sweep, its run lock is freed, and its
    event goes out now."""
    engine = db.predictions_engine()
    lock = RunLock.from_settings()
    closed = [str(r["id"]) for schedule in SCHEDULES for r in run_start.close_abandoned_runs(schedule, lock=lock)]
    ids = records.due_delivery_ids(engine, overdue_s=float(overdue_s))
    for run_id in closed:
        ids += [d["id"] for d in records.list_deliveries(engine, run_id=run_id)
                if d["status"] == "pending" and d["id"] not in ids]
    enqueued = [d for d in ids if deliveries.enqueue_delivery(d, enqueue)]
    result: dict[str, Any] = {"due": len(ids), "enqueued": len(enqueued)}
    if closed:
        result["closed_runs"] = closed
    return result
