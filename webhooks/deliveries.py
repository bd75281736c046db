"""The delivery loop of the completion webhook: record one delivery per receiver, then attempt,
back off and retry each until it is delivered, fails for good, or runs out of attempts.

Why the engine and the settings are handed in: this package sits below the worker (layer 2), so
it cannot reach for ``worker.db`` or ``worker.settings``; its callers (the run loop, the CLI, the
tasks) already hold both.

Why queueing is an ``enqueue`` callable handed in, not an import of the Celery task: the task
lives in ``tasks.webhooks``, two layers up, and importing it from here was both an upward import
and a module cycle. ``tasks`` passes its task's ``apply_async``; the worker CLI, which may not
import ``tasks`` either, sends the task by name (``celery_app.send_task``). Either way the queue
only carries a delivery id: the row holds the body and the attempt budget.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import Engine

from core.settings import WebhookSettings
from webhooks.payload import EVENT_TYPE, build_body, delivery_id_for
from webhooks.records import DeliveryRecords, get_delivery, list_deliveries, seconds_until
from webhooks.transport import SendResult, backoff_delay, send_signed

log = logging.getLogger(__name__)

# Extra lease on a claimed attempt beyond its own timeouts before the sweep may take it over.
_LEASE_MARGIN_S = 30.0

# ``enqueue`` hands the delivery to the webhooks queue, ``inline`` sends in this process within
# ``inline_budget_s``, ``none`` only records (the sweep sends later).
SendMode = Literal["inline", "enqueue", "none"]
# Queue one attempt of a delivery: (delivery id, countdown in seconds). May raise (broker down).
Enqueue = Callable[[str, float], object]


@dataclass(frozen=True)
class AttemptResult:
    """One turn of a delivery. ``attempt_no`` None: nothing was claimed (delivered, failed, not
    due yet, or another worker holds the attempt). ``retry_in_s``: when the delivery is pending,
    seconds until its next attempt is due."""

    delivery_id: str
    attempt_no: int | None
    delivery_status: str
    retry_in_s: float | None = None
    send: SendResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def attempt_delivery(
    delivery_id: str,
    *,
    engine: Engine,
    settings: WebhookSettings,
    rng: random.Random | None = None,
) -> AttemptResult:
    """Claim the delivery's next attempt if it is due, send it, record the outcome.

    Signs with the receiver's *current* secrets from settings (so a rotation applies to retries);
    a receiver removed from settings fails the delivery with a reason, for an admin to see.
    """
    records = DeliveryRecords(engine)
    lease = settings.connect_timeout_s + 2 * settings.timeout_s + _LEASE_MARGIN_S
    claim = records.claim_attempt(delivery_id, lease_s=lease)
    if claim is None:
        row = get_delivery(engine, delivery_id)
        if row is None:
            return AttemptResult(delivery_id, None, "missing")
        can_retry = row["status"] == "pending" and row["attempt_count"] < row["attempt_limit"]
        wait = seconds_until(engine, row["next_attempt_at"]) if can_retry else None
        return AttemptResult(delivery_id, None, row["status"], wait)
    attempt_no = int(claim["attempt_count"])
    receiver = settings.receiver(claim["receiver"])
    if receiver is None:
        result = SendResult(
            "failed", None, 0, error=f"receiver {claim['receiver']!r} is not configured; fix settings, then redeliver"
        )
    else:
        result = send_signed(
            claim["url"],
            delivery_id,
            claim["payload"],
            [s.get_secret_value() for s in receiver.secrets],
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.timeout_s,
            max_body_chars=settings.response_body_max_chars,
        )
    retry_in: float | None = None
    if result.outcome == "delivered":
        status = "delivered"
    elif result.outcome == "failed":
        status = "failed"
    elif attempt_no >= int(claim["attempt_limit"]):
        status = "exhausted"
    else:
        status = "pending"
        # Count from the start of this budget: after an admin's redelivery the waits start short again.
        attempt_in_budget = max(1, attempt_no - (int(claim["attempt_limit"]) - settings.max_attempts))
        retry_in = backoff_delay(
            attempt_in_budget,
            base_s=settings.backoff_base_s,
            max_s=settings.backoff_max_s,
            retry_after_s=result.retry_after_s,
            rng=rng,
        )
    records.record_attempt(
        delivery_id,
        attempt_no,
        attempt_status=result.outcome,
        response_status=result.status_code,
        response_body=result.response_body,
        error=result.error,
        duration_ms=result.duration_ms,
        delivery_status=status,
        retry_in_s=retry_in,
    )
    log_at = logging.INFO if status in ("delivered", "pending") else logging.WARNING
    log.log(
        log_at,
        "webhook %s to %s: attempt %d %s (%s)%s",
        delivery_id,
        claim["receiver"],
        attempt_no,
        result.outcome,
        result.status_code or result.error,
        f", next in {retry_in:.1f} s" if retry_in is not None else f", delivery {status}",
    )
    return AttemptResult(delivery_id, attempt_no, status, retry_in, result)


def deliver_inline(
    delivery_ids: Iterable[str],
    *,
    engine: Engine,
    settings: WebhookSettings,
    budget_s: float | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, AttemptResult]:
    """Deliver in this process with the same policy as the Celery path, within a time budget.

    The CLI and the demo have no worker to come back later, so they retry here; but a receiver
    that is down must not hold a finished run for long. Receivers are served concurrently (one
    thread each): a hanging or slow receiver no longer delays the healthy ones (issue 25: two got
    their event 20 s late). The budget bounds the whole phase, attempts included: an attempt near
    its end gets only the time left for its connect and read timeouts. After ``budget_s`` (default
    ``settings.inline_budget_s``) the remaining deliveries stay ``pending`` with their next attempt
    time, for the sweep task or ``python -m worker webhooks redeliver``. Returns the last result
    per delivery.
    """
    budget = settings.inline_budget_s if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    ids = list(dict.fromkeys(delivery_ids))
    if not ids:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(ids), _MAX_CONCURRENT), thread_name_prefix="webhook") as pool:
        futures = {d: pool.submit(_deliver_until, d, deadline, engine, settings, rng, sleep) for d in ids}
        results = {d: f.result() for d, f in futures.items()}
    left = [d for d, r in results.items() if r.delivery_status == "pending"]
    if left:
        log.warning("webhooks: %d delivery(ies) still pending after the inline budget of %.0f s; "
                    "left for the sweep or `webhooks redeliver`", len(left), budget)
    return results


# Receivers served at once by the inline phase; more deliveries than this queue for a thread.
_MAX_CONCURRENT = 16
# The least time an attempt gets (even with the budget spent: the first attempt is always made).
_MIN_ATTEMPT_S = 0.3


def _within(settings: WebhookSettings, seconds: float) -> WebhookSettings:
    """``settings`` with timeouts whose worst case (connect + 2 x read, the transport's deadline)
    fits in ``seconds``; unchanged when they fit already."""
    worst = settings.connect_timeout_s + 2 * settings.timeout_s
    if worst <= seconds:
        return settings
    scale = max(seconds, _MIN_ATTEMPT_S) / worst
    return settings.model_copy(update={"connect_timeout_s": settings.connect_timeout_s * scale,
                                       "timeout_s": settings.timeout_s * scale})


def _deliver_until(delivery_id: str, deadline: float, engine: Engine, settings: WebhookSettings,
                   rng: random.Random | None, sleep: Callable[[float], None]) -> AttemptResult:
    """One delivery's attempts and waits until it is settled or the deadline comes."""
    result: AttemptResult | None = None
    while True:
        attempt = attempt_delivery(delivery_id, engine=engine, settings=_within(settings, deadline - time.monotonic()),
                                   rng=rng)
        if attempt.attempt_no is not None or result is None:
            result = attempt
        if attempt.delivery_status != "pending" or attempt.retry_in_s is None:
            return result
        # retry later, or not due yet (a fresh retry time, or another process's lease)
        wait = attempt.retry_in_s + (0.0 if attempt.attempt_no else 0.01)
        if time.monotonic() + wait >= deadline:
            return result
        sleep(wait)


def enqueue_delivery(delivery_id: str, enqueue: Enqueue, *, countdown_s: float = 0.0) -> bool:
    """Hand one delivery to the webhooks queue through ``enqueue``. False (logged) if the broker
    cannot take it: the row stays pending and the sweep task sends it later, so a broker outage
    loses nothing."""
    try:
        enqueue(delivery_id, max(0.0, countdown_s))
        return True
    except Exception as exc:
        log.warning("webhook %s: could not enqueue (%s: %s); left pending", delivery_id, type(exc).__name__, exc)
        return False


def _check_send(send: SendMode, enqueue: Enqueue | None) -> None:
    """A wrong mode is the caller's bug: refused before anything is recorded or reopened."""
    if send not in ("inline", "enqueue", "none"):
        raise ValueError(f"send must be 'inline', 'enqueue' or 'none', not {send!r}")
    if send == "enqueue" and enqueue is None:
        raise ValueError("send='enqueue' needs an enqueue callable (e.g. the deliver task's apply_async)")


def _send(ids: list[str], send: SendMode, settings: WebhookSettings, engine: Engine, enqueue: Enqueue | None) -> None:
    if send == "inline":
        deliver_inline(ids, engine=engine, settings=settings)
    elif send == "enqueue":
        assert enqueue is not None  # _check_send refused it before
        for delivery_id in ids:
            enqueue_delivery(delivery_id, enqueue)


def create_run_deliveries(
    run_record: Mapping[str, Any], *, engine: Engine, settings: WebhookSettings
) -> list[str]:
    """One delivery row per configured receiver for this run's completion, before any send.

    Already recorded events (same outcome emitted twice) are returned, not duplicated.
    """
    receivers = settings.all_receivers()
    if not receivers:
        return []
    records = DeliveryRecords(engine)
    body = build_body(run_record)
    data = json.loads(body)["data"]
    ids = []
    for receiver in receivers:
        delivery_id = delivery_id_for(receiver.name, data)
        records.create(
            delivery_id,
            event_type=EVENT_TYPE,
            run_id=data["run_id"],
            receiver=receiver.name,
            url=receiver.url,
            payload=body,
            attempt_limit=settings.max_attempts,
        )
        ids.append(delivery_id)
    return ids


def emit_run_completed(
    run_record: Mapping[str, Any],
    send: SendMode,
    *,
    engine: Engine,
    settings: WebhookSettings,
    enqueue: Enqueue | None = None,
) -> list[str]:
    """Announce a finished run (succeeded, partial or failed) to every receiver; the run's finishing
    step calls this with the record ``finish_run`` returned.

    ``send``: ``enqueue`` hands each delivery to the webhooks queue through ``enqueue`` (Celery
    path), ``inline`` sends in this process within ``settings.inline_budget_s`` (CLI, demo),
    ``none`` only records. Returns the delivery ids (the ``webhook-id`` of each). Never raises
    once the arguments are valid: the run is already recorded, and a webhook problem must not turn
    it into a failure; problems are logged and the rows stay pending for the sweep.
    """
    _check_send(send, enqueue)
    try:
        ids = create_run_deliveries(run_record, engine=engine, settings=settings)
    except Exception:
        log.exception("webhooks: could not record the completion event of run %s", run_record.get("id"))
        return []
    try:
        _send(ids, send, settings, engine, enqueue)
    except Exception:
        log.exception("webhooks: sending the completion event of run %s failed; left pending", run_record.get("id"))
    return ids


def redeliver(
    delivery_id: str | None = None,
    *,
    run_id: str | None = None,
    send: SendMode = "inline",
    engine: Engine,
    settings: WebhookSettings,
    enqueue: Enqueue | None = None,
) -> list[str]:
    """An admin's redelivery of one delivery, or of every undelivered one of a run.

    Failed and exhausted deliveries get a fresh budget of ``max_attempts``; pending ones are sent
    now too (e.g. left over by the inline budget or a broker outage). Delivered ones are left
    alone. Same ids, same bytes: receivers drop what they already have. Returns the ids sent.
    """
    if (delivery_id is None) == (run_id is None):
        raise ValueError("give exactly one of delivery_id or run_id")
    _check_send(send, enqueue)
    if delivery_id is not None:
        row = get_delivery(engine, delivery_id)
        if row is None:
            raise LookupError(f"no webhook delivery {delivery_id!r}")
        rows = [row]
    else:
        rows = list_deliveries(engine, run_id=run_id)
    reopened = DeliveryRecords(engine).reopen(
        [r["id"] for r in rows if r["status"] != "delivered"], extra_attempts=settings.max_attempts
    )
    _send(reopened, send, settings, engine, enqueue)
    return reopened


__all__ = [
    "AttemptResult",
    "Enqueue",
    "SendMode",
    "attempt_delivery",
    "create_run_deliveries",
    "deliver_inline",
    "emit_run_completed",
    "enqueue_delivery",
    "redeliver",
]
