"""One signed POST to a receiver, its verdict, and how long to wait before the next one.

Why the sender returns a result instead of raising: whether to retry is a property of the answer
(5xx, 429, a timeout may pass; other 4xx and redirects will not), and the caller, a Celery task
or the in-process loop, only has to schedule what the result says.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

import httpx

from webhooks.signing import sign_headers

log = logging.getLogger(__name__)

USER_AGENT = "rms-ml-webhooks/1"


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
    """The outcome of an HTTP status: ``delivered``, ``retry`` or ``failed`` (see ``SendResult``)."""
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


__all__ = ["USER_AGENT", "SendResult", "backoff_delay", "classify", "parse_retry_after", "send_signed"]
