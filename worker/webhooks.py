"""The completion webhook: build the event, sign it the Standard Webhooks way, deliver it as records.

Why records before sends: delivery is at least once, so the truth about an event is the database,
not a task queue or a log. A delivery row per event and receiver exists before the first byte is
sent and its id *is* the ``webhook-id``, so every retry and every admin redelivery carries the
same id and receivers can drop duplicates. Every try is an attempt row, opened before sending.

Why the sender returns a result instead of raising: whether to retry is a property of the answer
(5xx, 429, a timeout may pass; other 4xx and redirects will not), and the caller, a Celery task
or the in-process loop, only has to schedule what the result says.

Why bodies are stored and re-sent byte for byte: the signature covers the exact bytes, and a
receiver that dedupes by ``webhook-id`` must see the same event each time. Only the
``webhook-timestamp`` is fresh on each attempt: receivers reject timestamps older than 5 minutes.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Literal

import httpx
from sqlalchemy import Engine, text
from standardwebhooks import Webhook

from worker.settings import Settings, WebhookReceiver, get_settings
from worker.writer import PredictionWriter

log = logging.getLogger(__name__)

EVENT_TYPE = "predictions.completed"
USER_AGENT = "rms-ml-webhooks/1"
# Ids derive from the event, so emitting the same outcome twice finds the same rows.
_ID_NAMESPACE = uuid.UUID("6f1c1d1e-8a53-4f0e-9f55-3c2b8f3b7a10")
_REASON_MAX_CHARS = 300
# Extra lease on a claimed attempt beyond its own timeouts before the sweep may take it over.
_LEASE_MARGIN_S = 30.0

SendMode = Literal["inline", "enqueue", "none"]
DELIVERY_STATUSES = ("pending", "delivered", "failed", "exhausted")
FAILED_STATUSES = ("failed", "exhausted")


# ---------------------------------------------------------------------------------------- body
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE_INTL = re.compile(r"\+\d[\d\s().-]{6,}\d")
_PHONE_NANP = re.compile(r"\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")


def scrub_reason(reason: Any) -> str:
    """A failure reason fit for the webhook: short, with anything shaped like an email or a phone
    number redacted. Reasons are exception texts, which can quote a value from a bad row."""
    out = str(reason or "unknown error")
    out = _EMAIL.sub("[email]", out)
    out = _PHONE_INTL.sub("[phone]", out)
    out = _PHONE_NANP.sub("[phone]", out)
    return out if len(out) <= _REASON_MAX_CHARS else out[: _REASON_MAX_CHARS - 1] + "…"


def _utc_iso(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def failed_entries(run_record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the run skipped or failed, each with a reason: failed shards, prediction types skipped
    for a missing RMS module, malformed source rows counted and skipped, and a run that stopped
    before any shard ran."""
    entries: list[dict[str, Any]] = []
    for shard in _as_json(run_record.get("failed")) or []:
        entries.append(
            {
                "kind": "shard",
                "shard": shard.get("shard"),
                "restaurant_ids": [int(i) for i in shard.get("restaurant_ids") or []],
                "reason": scrub_reason(shard.get("error")),
            }
        )
    for ptype, reason in sorted((_as_json(run_record.get("modules_skipped")) or {}).items()):
        entries.append({"kind": "prediction_type", "prediction_type": ptype, "reason": scrub_reason(reason)})
    for source, count in sorted((_as_json(run_record.get("rows_skipped")) or {}).items()):
        if int(count):
            entries.append(
                {"kind": "rows", "source": source, "count": int(count), "reason": "malformed rows skipped"}
            )
    if run_record.get("status") == "failed" and not any(e["kind"] == "shard" for e in entries):
        entries.append({"kind": "run", "reason": scrub_reason(run_record.get("error") or "run failed")})
    return entries


def event_data(run_record: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's ``data`` (shared/contracts/README.md section 3), plus fields added since
    (alerts, retrain, accuracy); none renamed.

    ``prediction_types`` are the counts the writer read back from committed rows (``rows_written``
    of the run record), not what the models meant to write.
    """
    written = _as_json(run_record.get("rows_written")) or {}
    return {
        "run_id": str(run_record["id"]),
        "schedule": run_record.get("schedule"),
        "status": run_record.get("status"),
        "started_at": _utc_iso(run_record.get("started_at")),
        "finished_at": _utc_iso(run_record.get("finished_at")),
        "prediction_types": {str(k): int(v) for k, v in sorted(written.items())},
        "restaurant_ids": [int(i) for i in _as_json(run_record.get("restaurant_ids")) or []],
        "failed": failed_entries(run_record),
    } | _accuracy_fields(run_record)


def _accuracy_fields(run_record: Mapping[str, Any]) -> dict[str, Any]:
    """Fields added by issue 9 (docs/accuracy.md): drift/degradation alerts, the types the next
    run retrains, realised accuracy of earlier predictions. Every run closed by
    ``worker.runs.finish_run`` carries them; they are always present (empty when nothing was
    found) so that receivers see one body shape."""
    return {
        "alerts": list(_as_json(run_record.get("alerts")) or []),
        "retrain": [str(t) for t in _as_json(run_record.get("retrain")) or []],
        "accuracy": dict(_as_json(run_record.get("accuracy")) or {}),
    }


def build_body(run_record: Mapping[str, Any], *, event_time: datetime | None = None) -> str:
    """The exact body sent, as ASCII JSON text (so its bytes and the signed string are the same).

    The envelope ``timestamp`` is when the run finished (else ``event_time``, else now).
    """
    data = event_data(run_record)
    stamp = data["finished_at"] or _utc_iso(event_time or datetime.now(timezone.utc))
    event = {"type": EVENT_TYPE, "timestamp": stamp, "data": data}
    return json.dumps(event, ensure_ascii=True, separators=(",", ":"))


def delivery_id_for(receiver: str, data: Mapping[str, Any]) -> str:
    """``msg_`` + a UUID derived from the receiver and the run's outcome.

    A finishing step that runs twice with the same outcome (a redelivered Celery message) gets the
    same id and finds its delivery already recorded; a re-run that changes the outcome is a new
    event. The finish time is left out of the key because every finish rewrites it.
    """
    key = {k: data[k] for k in ("run_id", "schedule", "status", "prediction_types", "restaurant_ids", "failed")}
    name = f"{EVENT_TYPE}|{receiver}|{json.dumps(key, sort_keys=True, separators=(',', ':'))}"
    return "msg_" + uuid.uuid5(_ID_NAMESPACE, name).hex


# ------------------------------------------------------------------------------------- signing
def sign_headers(delivery_id: str, body: str, secrets: Sequence[str], *, at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed with every secret (several during a rotation).

    The library floors the timestamp and reads it as UTC, so an aware UTC instant is passed.
    """
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    when = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    signatures = " ".join(Webhook(s).sign(delivery_id, when, body) for s in secrets)
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signatures,
    }


# ------------------------------------------------------------------------------------- sending
@dataclass(frozen=True)
class SendResult:
    """What one POST came to. ``outcome``: ``delivered`` (2xx), ``retry`` (may pass: network
    error, timeout, 5xx, 429) or ``failed`` (will not pass by waiting: other 4xx, 3xx, bad URL)."""

    outcome: str
    status_code: int | None
    duration_ms: int
    response_body: str | None = None
    error: str | None = None
    retry_after_s: float | None = None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def classify(status_code: int) -> str:
    if 200 <= status_code < 300:
        return "delivered"
    if status_code == 429 or status_code >= 500:
        return "retry"
    return "failed"


def _read_limited(response: httpx.Response, max_chars: int, deadline: float) -> str:
    """At most ``max_chars`` of the response, never waiting past ``deadline``: a receiver's answer
    is for diagnosis, and a huge or dripping one must not hold a worker."""
    if max_chars <= 0:
        return ""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= max_chars * 4 or time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass  # the status line is what counts; a broken body is still a readable answer
    return b"".join(chunks).decode("utf-8", errors="replace")[:max_chars]


@lru_cache(maxsize=8)
def _client(connect_timeout_s: float, read_timeout_s: float, pid: int) -> httpx.Client:
    """One client per process and timeouts: building one loads the CA bundle (~0.1 s of CPU), and
    a shared pool reuses connections to the same receiver. ``pid`` keeps a forked worker child
    from using its parent's sockets."""
    timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s)
    return httpx.Client(timeout=timeout, follow_redirects=False)


def send_signed(
    url: str,
    delivery_id: str,
    body: str,
    secrets: Sequence[str],
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_body_chars: int = 2000,
    now: datetime | None = None,
) -> SendResult:
    """POST ``body`` to ``url`` once, signed; never raises, never follows a redirect.

    Args:
        url: the receiver's endpoint.
        delivery_id: the ``webhook-id`` (stable across retries).
        body: the exact JSON text to send (ASCII), as stored on the delivery row.
        secrets: ``whsec_`` secrets; each adds a signature.
        connect_timeout_s: seconds to establish the connection.
        read_timeout_s: seconds to wait for each read of the answer (and each write).
        max_body_chars: characters of the response kept for the attempt record.
        now: the signing instant (tests); defaults to the wall clock.
    """
    started = time.monotonic()
    try:
        headers = sign_headers(delivery_id, body, secrets, at=now)
    except Exception as exc:  # a secret that cannot sign: no point retrying
        return SendResult("failed", None, 0, error=f"signing failed: {type(exc).__name__}")
    headers.update({"content-type": "application/json", "user-agent": USER_AGENT})
    deadline = started + connect_timeout_s + 2 * read_timeout_s

    def elapsed_ms() -> int:
        return int(round((time.monotonic() - started) * 1000))

    try:
        client = _client(float(connect_timeout_s), float(read_timeout_s), os.getpid())
        with client.stream("POST", url, content=body.encode("ascii"), headers=headers) as response:
            text_ = _read_limited(response, max_body_chars, deadline)
            code = response.status_code
            outcome = classify(code)
            error = None
            if response.is_redirect:
                location = response.headers.get("location", "")[:200]
                error = f"HTTP {code}: redirect to {location!r} not followed; configure the final URL"
            elif outcome != "delivered":
                error = f"HTTP {code}"
            retry_after = parse_retry_after(response.headers.get("retry-after")) if outcome == "retry" else None
            return SendResult(outcome, code, elapsed_ms(), text_, error, retry_after)
    except httpx.TimeoutException as exc:
        kind = {
            httpx.ConnectTimeout: "connect",
            httpx.ReadTimeout: "read",
            httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "pool",
        }.get(type(exc), "")
        return SendResult("retry", None, elapsed_ms(), error=f"timeout ({kind or type(exc).__name__})")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return SendResult("failed", None, elapsed_ms(), error=f"bad URL: {type(exc).__name__}: {exc}")
    except httpx.TransportError as exc:
        return SendResult("retry", None, elapsed_ms(), error=f"network error: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug here must not crash the caller's loop; it is recorded instead
        log.exception("webhook %s: unexpected error while sending", delivery_id)
        return SendResult("failed", None, elapsed_ms(), error=f"unexpected: {type(exc).__name__}: {exc}")


def backoff_delay(
    attempt_no: int,
    *,
    base_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt_no`` (1-based).

    Exponential with "equal jitter": half of ``base * 2**(n-1)`` fixed, half random, so retries
    of many deliveries spread out yet never come back sooner than half the nominal wait. A
    ``Retry-After`` is a floor. Everything is capped at ``max_s``.

    Args:
        attempt_no: the attempt that just failed, from 1.
        base_s: nominal wait after the first attempt, seconds.
        max_s: cap on any wait, seconds.
        retry_after_s: the receiver's ``Retry-After``, seconds, if it sent one.
        rng: random source (tests).
    """
    nominal = min(max_s, base_s * (2 ** max(0, attempt_no - 1)))
    delay = nominal / 2 + (rng or random).uniform(0, nominal / 2)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return min(max_s, delay)


# ---------------------------------------------------------------------------- delivery records
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


def _engine(engine: Engine | None) -> Engine:
    if engine is not None:
        return engine
    from worker import db

    return db.predictions_engine()


def _seconds_until(engine: Engine, when: datetime | None) -> float | None:
    """Seconds from the database's clock (the one claims use) until ``when``."""
    if when is None:
        return None
    with engine.connect() as conn:
        return max(0.0, float(conn.execute(text("SELECT extract(epoch FROM (:t - now()))"), {"t": when}).scalar()))


def attempt_delivery(
    delivery_id: str,
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
    rng: random.Random | None = None,
) -> AttemptResult:
    """Claim the delivery's next attempt if it is due, send it, record the outcome.

    Signs with the receiver's *current* secrets from settings (so a rotation applies to retries);
    a receiver removed from settings fails the delivery with a reason, for an admin to see.
    """
    settings = settings or get_settings()
    hooks = settings.webhooks
    engine = _engine(engine)
    writer = PredictionWriter(engine)
    lease = hooks.connect_timeout_s + 2 * hooks.timeout_s + _LEASE_MARGIN_S
    claim = writer.claim_delivery_attempt(delivery_id, lease_s=lease)
    if claim is None:
        row = get_delivery(engine, delivery_id)
        if row is None:
            return AttemptResult(delivery_id, None, "missing")
        can_retry = row["status"] == "pending" and row["attempt_count"] < row["attempt_limit"]
        wait = _seconds_until(engine, row["next_attempt_at"]) if can_retry else None
        return AttemptResult(delivery_id, None, row["status"], wait)
    attempt_no = int(claim["attempt_count"])
    receiver = hooks.receiver(claim["receiver"])
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
            connect_timeout_s=hooks.connect_timeout_s,
            read_timeout_s=hooks.timeout_s,
            max_body_chars=hooks.response_body_max_chars,
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
        attempt_in_budget = max(1, attempt_no - (int(claim["attempt_limit"]) - hooks.max_attempts))
        retry_in = backoff_delay(
            attempt_in_budget,
            base_s=hooks.backoff_base_s,
            max_s=hooks.backoff_max_s,
            retry_after_s=result.retry_after_s,
            rng=rng,
        )
    writer.record_delivery_attempt(
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
    budget_s: float | None = None,
    settings: Settings | None = None,
    engine: Engine | None = None,
    rng: random.Random | None = None,
    sleep=time.sleep,
) -> dict[str, AttemptResult]:
    """Deliver in this process with the same policy as the Celery path, within a time budget.

    The CLI and the demo have no worker to come back later, so they retry here; but a receiver
    that is down must not hold a finished run for long. After ``budget_s`` (default
    ``webhooks.inline_budget_s``) the remaining deliveries stay ``pending`` with their next
    attempt time, for the sweep task or ``python -m worker webhooks redeliver``. Returns the last
    result per delivery.
    """
    settings = settings or get_settings()
    engine = _engine(engine)
    budget = settings.webhooks.inline_budget_s if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    due = {d: time.monotonic() for d in delivery_ids}
    results: dict[str, AttemptResult] = {}
    while due:
        for delivery_id in sorted(due, key=due.get):
            if due[delivery_id] > time.monotonic():
                continue
            result = attempt_delivery(delivery_id, settings=settings, engine=engine, rng=rng)
            if result.attempt_no is not None or delivery_id not in results:
                results[delivery_id] = result
            if result.delivery_status != "pending" or result.retry_in_s is None:
                del due[delivery_id]
            else:  # retry later, or not due yet (a fresh retry time, or another process's lease)
                due[delivery_id] = time.monotonic() + result.retry_in_s + (0.0 if result.attempt_no else 0.01)
        if not due:
            break
        wake = min(due.values())
        if wake > deadline:
            log.warning(
                "webhooks: %d delivery(ies) still pending after the inline budget of %.0f s; "
                "left for the sweep or `webhooks redeliver`",
                len(due),
                budget,
            )
            break
        sleep(max(0.0, wake - time.monotonic()))
    return results


def enqueue_delivery(delivery_id: str, *, countdown_s: float = 0.0) -> bool:
    """Hand one delivery to the webhooks queue. False (logged) if the broker cannot take it: the
    row stays pending and the sweep task sends it later, so a broker outage loses nothing."""
    try:
        from tasks.webhooks import deliver

        deliver.apply_async(args=[delivery_id], countdown=max(0.0, countdown_s))
        return True
    except Exception as exc:
        log.warning("webhook %s: could not enqueue (%s: %s); left pending", delivery_id, type(exc).__name__, exc)
        return False


def _send(ids: list[str], send: SendMode, settings: Settings, engine: Engine) -> None:
    if send == "inline":
        deliver_inline(ids, settings=settings, engine=engine)
    elif send == "enqueue":
        for delivery_id in ids:
            enqueue_delivery(delivery_id)
    elif send != "none":
        raise ValueError(f"send must be 'inline', 'enqueue' or 'none', not {send!r}")


def create_run_deliveries(
    run_record: Mapping[str, Any], *, settings: Settings | None = None, engine: Engine | None = None
) -> list[str]:
    """One delivery row per configured receiver for this run's completion, before any send.

    Already recorded events (same outcome emitted twice) are returned, not duplicated.
    """
    settings = settings or get_settings()
    receivers: list[WebhookReceiver] = settings.webhooks.all_receivers()
    if not receivers:
        return []
    writer = PredictionWriter(_engine(engine))
    body = build_body(run_record)
    data = json.loads(body)["data"]
    ids = []
    for receiver in receivers:
        delivery_id = delivery_id_for(receiver.name, data)
        writer.create_delivery(
            delivery_id,
            event_type=EVENT_TYPE,
            run_id=data["run_id"],
            receiver=receiver.name,
            url=receiver.url,
            payload=body,
            attempt_limit=settings.webhooks.max_attempts,
        )
        ids.append(delivery_id)
    return ids


def emit_run_completed(
    run_record: Mapping[str, Any],
    send: SendMode = "enqueue",
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
) -> list[str]:
    """Announce a finished run (succeeded, partial or failed) to every receiver; the run's finishing
    step calls this with the record ``finish_run`` returned.

    ``send``: ``enqueue`` hands each delivery to the webhooks queue (Celery path), ``inline`` sends
    in this process within ``webhooks.inline_budget_s`` (CLI, demo), ``none`` only records.
    Returns the delivery ids (the ``webhook-id`` of each). Never raises: the run is already
    recorded, and a webhook problem must not turn it into a failure; problems are logged and the
    rows stay pending for the sweep.
    """
    settings = settings or get_settings()
    try:
        engine = _engine(engine)
        ids = create_run_deliveries(run_record, settings=settings, engine=engine)
    except Exception:
        log.exception("webhooks: could not record the completion event of run %s", run_record.get("id"))
        return []
    try:
        _send(ids, send, settings, engine)
    except Exception:
        log.exception("webhooks: sending the completion event of run %s failed; left pending", run_record.get("id"))
    return ids


def redeliver(
    delivery_id: str | None = None,
    *,
    run_id: str | None = None,
    send: SendMode = "inline",
    settings: Settings | None = None,
    engine: Engine | None = None,
) -> list[str]:
    """An admin's redelivery of one delivery, or of every undelivered one of a run.

    Failed and exhausted deliveries get a fresh budget of ``max_attempts``; pending ones are sent
    now too (e.g. left over by the inline budget or a broker outage). Delivered ones are left
    alone. Same ids, same bytes: receivers drop what they already have. Returns the ids sent.
    """
    if (delivery_id is None) == (run_id is None):
        raise ValueError("give exactly one of delivery_id or run_id")
    settings = settings or get_settings()
    engine = _engine(engine)
    if delivery_id is not None:
        row = get_delivery(engine, delivery_id)
        if row is None:
            raise LookupError(f"no webhook delivery {delivery_id!r}")
        rows = [row]
    else:
        rows = list_deliveries(engine, run_id=run_id)
    reopened = PredictionWriter(engine).reopen_deliveries(
        [r["id"] for r in rows if r["status"] != "delivered"], extra_attempts=settings.webhooks.max_attempts
    )
    _send(reopened, send, settings, engine)
    return reopened


# ------------------------------------------------------------------------------------------ reads
_DELIVERY_COLUMNS = (
    "id, event_type, run_id, receiver, url, status, attempt_count, attempt_limit, next_attempt_at, "
    "last_error, created_at, updated_at, delivered_at"
)


def get_delivery(engine: Engine, delivery_id: str, *, with_payload: bool = False) -> dict[str, Any] | None:
    cols = _DELIVERY_COLUMNS + (", payload" if with_payload else "")
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT {cols} FROM ml_webhook_delivery WHERE id = :id"), {"id": delivery_id}
        ).mappings().first()
    return dict(row) if row else None


def list_deliveries(
    engine: Engine, *, failed_only: bool = False, run_id: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Deliveries, newest first. ``failed_only``: the ones an admin must look at: failed,
    exhausted, and pending ones whose last attempt's worker died (no attempt left, lease over)."""
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": int(limit)}
    if failed_only:
        where.append(
            "(status IN ('failed', 'exhausted') OR (status = 'pending' AND attempt_count >= attempt_limit "
            "AND next_attempt_at < now()))"
        )
    if run_id is not None:
        where.append("run_id = CAST(:run_id AS uuid)")
        params["run_id"] = str(run_id)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT {_DELIVERY_COLUMNS} FROM ml_webhook_delivery WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, receiver LIMIT :limit"
            ),
            params,
        ).mappings().all()
    return [dict(r) for r in rows]


def list_attempts(engine: Engine, delivery_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT attempt_no, status, response_status, response_body, error, duration_ms, created_at, "
                "finished_at FROM ml_webhook_attempt WHERE delivery_id = :id ORDER BY attempt_no"
            ),
            {"id": delivery_id},
        ).mappings().all()
    return [dict(r) for r in rows]


def due_delivery_ids(engine: Engine, *, overdue_s: float = 0.0, limit: int = 500) -> list[str]:
    """Pending deliveries whose next attempt is more than ``overdue_s`` late: left by the inline
    budget, a broker outage, or a worker that died mid-attempt."""
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT id FROM ml_webhook_delivery WHERE status = 'pending' AND attempt_count < attempt_limit "
                    "AND next_attempt_at <= now() - make_interval(secs => :late) "
                    "ORDER BY next_attempt_at LIMIT :limit"
                ),
                {"late": float(overdue_s), "limit": int(limit)},
            )
        ]


__all__ = [
    "EVENT_TYPE",
    "AttemptResult",
    "SendResult",
    "attempt_delivery",
    "backoff_delay",
    "build_body",
    "create_run_deliveries",
    "deliver_inline",
    "due_delivery_ids",
    "emit_run_completed",
    "enqueue_delivery",
    "event_data",
    "get_delivery",
    "list_attempts",
    "list_deliveries",
    "redeliver",
    "send_signed",
    "sign_headers",
]
