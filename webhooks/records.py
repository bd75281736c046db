"""The delivery and attempt records of the completion webhook (``ml_webhook_delivery``,
``ml_webhook_attempt``): their one writer, ``DeliveryRecords``, and the reads below it.

Why records before sends: delivery is at least once, so the truth about an event is the database,
not a task queue or a log. A delivery row per event and receiver exists before the first byte is
sent and its id *is* the ``webhook-id``, so every retry and every admin redelivery carries the
same id and receivers can drop duplicates. Every try is an attempt row, opened before sending.
The attempt budget lives on the delivery row, not in a task, so a redelivered message or an
admin's redelivery continue the same count.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text


class DeliveryRecords:
    """Writes the delivery and attempt rows; every method is one transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(
        self,
        delivery_id: str,
        *,
        event_type: str,
        run_id: uuid.UUID | str | None,
        receiver: str,
        url: str,
        payload: str,
        attempt_limit: int,
    ) -> bool:
        """Record an event for one receiver before anything is sent, so no send goes unrecorded.

        The id is the event's ``webhook-id``; an event emitted twice (a redelivered finishing
        step) finds its row already there and is not recorded again. Returns True if created.
        """
        with self.engine.begin() as conn:
            created = conn.execute(
                text(
                    """
                    INSERT INTO ml_webhook_delivery (id, event_type, run_id, receiver, url, payload,
                                                     status, attempt_limit, next_attempt_at)
                    VALUES (:id, :event_type, :run_id, :receiver, :url, :payload,
                            'pending', :limit, now())
                    ON CONFLICT (id) DO NOTHING
                    RETURNING id
                    """
                ),
                {
                    "id": delivery_id,
                    "event_type": event_type,
                    "run_id": str(run_id) if run_id else None,
                    "receiver": receiver,
                    "url": url,
                    "payload": payload,
                    "limit": int(attempt_limit),
                },
            ).first()
        return created is not None

    def claim_attempt(self, delivery_id: str, *, lease_s: float) -> dict[str, Any] | None:
        """Take the next attempt of a due, pending delivery and record it as started.

        One conditional UPDATE is the claim: of two workers holding the same (redelivered)
        message only one gets the row, and a message arriving before ``next_attempt_at`` gets
        nothing. The lease pushes ``next_attempt_at`` past the attempt's own timeouts, so an
        attempt whose worker died is picked up again by the sweep. Returns None when not claimed.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    """
                    UPDATE ml_webhook_delivery
                    SET attempt_count = attempt_count + 1, updated_at = now(),
                        next_attempt_at = now() + make_interval(secs => :lease)
                    WHERE id = :id AND status = 'pending' AND attempt_count < attempt_limit
                      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                    RETURNING id, event_type, run_id, receiver, url, payload, attempt_count, attempt_limit
                    """
                ),
                {"id": delivery_id, "lease": float(lease_s)},
            ).mappings().first()
            if row is None:
                return None
            conn.execute(
                text(
                    "INSERT INTO ml_webhook_attempt (delivery_id, attempt_no, status) "
                    "VALUES (:id, :n, 'sending')"
                ),
                {"id": delivery_id, "n": row["attempt_count"]},
            )
        return dict(row)

    def record_attempt(
        self,
        delivery_id: str,
        attempt_no: int,
        *,
        attempt_status: str,
        response_status: int | None,
        response_body: str | None,
        error: str | None,
        duration_ms: int | None,
        delivery_status: str,
        retry_in_s: float | None = None,
    ) -> None:
        """Close one attempt and move its delivery on, in one transaction.

        ``delivery_status`` is where the delivery goes next: ``pending`` (with ``retry_in_s``),
        ``delivered``, ``failed`` (not retryable) or ``exhausted`` (no attempts left).
        """
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    """
                    UPDATE ml_webhook_attempt SET status = :status, finished_at = now(),
                        response_status = :code, response_body = :body, error = :error,
                        duration_ms = :ms
                    WHERE delivery_id = :id AND attempt_no = :n
                    """
                ),
                {
                    "id": delivery_id,
                    "n": int(attempt_no),
                    "status": attempt_status,
                    "code": response_status,
                    "body": response_body,
                    "error": error[:4000] if error else None,
                    "ms": duration_ms,
                },
            )
            conn.execute(
                text(
                    """
                    UPDATE ml_webhook_delivery SET status = :status, updated_at = now(),
                        next_attempt_at = CASE WHEN :status = 'pending'
                            THEN now() + make_interval(secs => :retry_in) END,
                        last_error = CASE WHEN :status = 'delivered' THEN NULL ELSE :error END,
                        delivered_at = CASE WHEN :status = 'delivered' THEN now() ELSE delivered_at END
                    WHERE id = :id
                    """
                ),
                {
                    "id": delivery_id,
                    "status": delivery_status,
                    "retry_in": float(retry_in_s or 0.0),
                    "error": error[:4000] if error else None,
                },
            )

    def reopen(self, delivery_ids: Iterable[str], *, extra_attempts: int) -> list[str]:
        """An admin's redelivery: failed or exhausted deliveries become due now, with a fresh
        budget of ``extra_attempts``; pending ones become due now with their budget unchanged
        (unless it is spent: a worker died during the last attempt).
        Same row, same ``webhook-id``: a receiver that did get the event after all drops the
        copy. Returns the ids reopened (delivered ones are left alone).
        """
        ids = [str(i) for i in delivery_ids]
        if not ids:
            return []
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    """
                    UPDATE ml_webhook_delivery
                    SET status = 'pending', next_attempt_at = now(), updated_at = now(),
                        attempt_limit = CASE WHEN status = 'pending' AND attempt_count < attempt_limit
                                             THEN attempt_limit ELSE attempt_count + :extra END
                    WHERE id = ANY(:ids) AND status IN ('pending', 'failed', 'exhausted')
                    RETURNING id
                    """
                ),
                {"ids": ids, "extra": int(extra_attempts)},
            )
            return sorted(r[0] for r in rows)


# ------------------------------------------------------------------------------------------ reads
_DELIVERY_COLUMNS = (
    "id, event_type, run_id, receiver, url, status, attempt_count, attempt_limit, next_attempt_at, "
    "last_error, created_at, updated_at, delivered_at"
)


def get_delivery(engine: Engine, delivery_id: str, *, with_payload: bool = False) -> dict[str, Any] | None:
    """One delivery row (its stored body too with ``with_payload``), or None."""
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
    """Every attempt of one delivery, first first."""
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


def seconds_until(engine: Engine, when: datetime | None) -> float | None:
    """Seconds from the database's clock (the one claims use) until ``when``."""
    if when is None:
        return None
    with engine.connect() as conn:
        return max(0.0, float(conn.execute(text("SELECT extract(epoch FROM (:t - now()))"), {"t": when}).scalar()))


__all__ = ["DeliveryRecords", "due_delivery_ids", "get_delivery", "list_attempts", "list_deliveries", "seconds_until"]
