"""Standard Webhooks signatures (https://www.standardwebhooks.com/) of an event body.

Why several secrets: during a rotation the receiver may hold the old or the new secret, so every
request carries a signature with each until the rotation ends. Why a fresh timestamp on every
attempt: receivers reject timestamps older than 5 minutes, while the id and body stay the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from standardwebhooks import Webhook


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


__all__ = ["sign_headers"]
