"""The inline webhook phase serves receivers at once and keeps to its budget (issue 25, item 6).

Before: deliveries went one at a time, so two healthy receivers got their event late behind a
hanging one and a slow one, and the phase overran its budget by a read timeout.
"""

from __future__ import annotations

import time

from tests.test_webhooks import engine, finished_run, hook_settings, new_secret, receivers  # noqa: F401 (fixtures)
from webhooks import deliveries, records

BUDGET_S = 3.0
READ_TIMEOUT_S = 2.0


def test_healthy_receivers_are_not_held_back_and_the_budget_holds(engine, receivers):  # noqa: F811
    secret = new_secret()
    hanging = receivers(secret, default=("hang",))
    slow = receivers(secret, script=[("hang",)])  # its first attempt times out, the retry is answered
    healthy = [receivers(secret), receivers(secret)]
    boxes = {"hanging": hanging, "slow": slow, "healthy-1": healthy[0], "healthy-2": healthy[1]}
    settings = hook_settings([(name, box.url(), [secret]) for name, box in boxes.items()],
                             connect_timeout_s=0.5, timeout_s=READ_TIMEOUT_S, max_attempts=5, backoff_base_s=0.05,
                             inline_budget_s=BUDGET_S)
    record = finished_run(engine)
    started = time.monotonic()
    ids = deliveries.emit_run_completed(record, send="inline", settings=settings, engine=engine)
    took = time.monotonic() - started
    assert len(ids) == 4
    # the phase keeps to its budget (before: budget + a read timeout or more)
    assert took <= BUDGET_S + 1.0, took
    # the healthy receivers heard at once, not after the hanging and the slow one's timeouts
    for box in healthy:
        assert len(box.events) == 1 and box.requests[0].at - started < 1.0, box.requests[0].at - started
    status = {r["receiver"]: r["status"] for r in (records.get_delivery(engine, d) for d in ids)}
    assert status == {"hanging": "pending", "slow": "delivered", "healthy-1": "delivered", "healthy-2": "delivered"}
