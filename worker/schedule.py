"""The beat schedule, in one place.

One entry per schedule of the contract (daily, weekly, monthly); which prediction types a schedule
runs is the catalog's business (``worker.catalog.units_for``), so adding a type never touches
beat. Times come from settings (``RMSML_SCHEDULES__DAILY`` ...) as five-field crontabs, read in
``settings.schedules.timezone`` (UTC by default: crontabs in DST-observing zones have fired twice
or not at all at the change, see docs/operations.md).

Drills and tests may give a schedule as ``every <n>s`` instead of a crontab, to see beat fire
within seconds; production uses crontabs.

Each entry's message ``expires`` after about 1.5x its interval: a trigger that nobody consumed by
then is stale (the next one is due), and running it late would only duplicate the next run.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from celery.schedules import crontab, schedule as every

from worker.catalog import SCHEDULES
from worker.queues import Queue
from worker.settings import Settings, get_settings

START_TASK = "rmsml.runs.start"
WEBHOOK_SWEEP_TASK = "rmsml.webhooks.deliver_due"

# Nominal interval of each entry, for message expiry (a month taken as 30 days).
NOMINAL_INTERVAL_S: dict[str, int] = {
    "daily": 86_400,
    "weekly": 7 * 86_400,
    "monthly": 30 * 86_400,
    "webhook_sweep": 300,
}

_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*s$")


class ScheduleSpecError(ValueError):
    """A schedule setting that is neither a five-field crontab nor ``every <n>s``."""


def parse_spec(spec: str) -> tuple[crontab | every, float | None]:
    """A beat schedule and, for ``every <n>s``, its interval in seconds.

    Args:
        spec: ``"minute hour day-of-month month day-of-week"`` (cron order) or ``"every 5s"``.
    """
    text = spec.strip()
    match = _EVERY.match(text)
    if match:
        seconds = float(match.group(1))
        if seconds <= 0:
            raise ScheduleSpecError(f"interval must be positive: {spec!r}")
        return every(timedelta(seconds=seconds)), seconds
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleSpecError(f"expected 5 crontab fields (minute hour dom month dow), got {spec!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return (
            crontab(
                minute=minute,
                hour=hour,
                day_of_month=day_of_month,
                month_of_year=month_of_year,
                day_of_week=day_of_week,
            ),
            None,
        )
    except ValueError as exc:
        raise ScheduleSpecError(f"bad crontab {spec!r}: {exc}") from None


def entry_name(schedule: str) -> str:
    return f"run-{schedule}-predictions"


def beat_schedule(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """Every beat entry: kebab-case name -> task, crontab, kwargs, options."""
    settings = settings or get_settings()
    entries: dict[str, dict[str, Any]] = {}
    for name in SCHEDULES:
        spec = getattr(settings.schedules, name)
        when, interval_s = parse_spec(spec)
        expires = 1.5 * (interval_s if interval_s is not None else NOMINAL_INTERVAL_S[name])
        entries[entry_name(name)] = {
            "task": START_TASK,
            "schedule": when,
            "kwargs": {"schedule": name, "trigger": "beat"},
            "options": {"queue": Queue.RUNS.value, "expires": expires},
        }
    # Deliveries left pending (a broker outage, the CLI's inline budget, a worker that died
    # mid-attempt) are re-enqueued by this sweep; a skipped sweep is harmless, the next one comes.
    when, interval_s = parse_spec(settings.schedules.webhook_sweep)
    entries["deliver-overdue-webhooks"] = {
        "task": WEBHOOK_SWEEP_TASK,
        "schedule": when,
        "kwargs": {},
        "options": {
            "queue": Queue.WEBHOOKS.value,
            "expires": 1.5 * (interval_s if interval_s is not None else NOMINAL_INTERVAL_S["webhook_sweep"]),
        },
    }
    return entries
