"""The beat schedule and the registered tasks, loaded as beat and the worker load them."""

from __future__ import annotations

import re

import pytest
from celery.schedules import crontab, schedule as every

from worker.catalog import SCHEDULES, units_for
from worker.schedule import ScheduleSpecError, beat_schedule, parse_spec
from worker.settings import Settings

pytestmark = pytest.mark.pure

def test_registered_task_names_snapshot():
    from worker.celery_app import app

    app.loader.import_default_modules()
    ours = sorted(name for name in app.tasks if not name.startswith("celery."))
    assert ours == [
        "rmsml.runs.finish", "rmsml.runs.shard", "rmsml.runs.start",
        "rmsml.webhooks.deliver", "rmsml.webhooks.deliver_due", "rmsml.webhooks.redeliver",
    ]

def test_beat_schedule_loads_with_one_kebab_case_entry_per_contract_schedule():
    from worker.celery_app import app

    app.loader.import_default_modules()
    entries = dict(app.conf.beat_schedule)
    assert sorted(entries) == [
        "deliver-overdue-webhooks", "run-daily-predictions", "run-monthly-predictions", "run-weekly-predictions",
    ]
    for name in entries:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name
    sweep = entries.pop("deliver-overdue-webhooks")
    assert sweep["task"] == "rmsml.webhooks.deliver_due" and sweep["task"] in app.tasks
    assert sweep["options"] == {"queue": "webhooks", "expires": 450.0}
    assert sweep["schedule"].minute == set(range(0, 60, 5))
    for name, entry in entries.items():
        assert entry["task"] == "rmsml.runs.start" and entry["task"] in app.tasks
        assert entry["kwargs"]["schedule"] in SCHEDULES and entry["kwargs"]["trigger"] == "beat"
        assert entry["options"]["queue"] == "runs"
        assert isinstance(entry["schedule"], crontab)
    day = 86_400
    assert entries["run-daily-predictions"]["options"]["expires"] == 1.5 * day
    assert entries["run-weekly-predictions"]["options"]["expires"] == 1.5 * 7 * day
    assert 40 * day <= entries["run-monthly-predictions"]["options"]["expires"] <= 47 * day
    assert app.conf.timezone == "UTC"

def test_crontabs_and_timezone_come_from_settings():
    settings = Settings(schedules={"daily": "30 2 * * *", "weekly": "0 3 * * 0", "monthly": "0 6 2 * *",
                                   "timezone": "Europe/Berlin"})
    entries = beat_schedule(settings)
    daily = entries["run-daily-predictions"]["schedule"]
    assert daily.minute == {30} and daily.hour == {2}
    weekly = entries["run-weekly-predictions"]["schedule"]
    assert weekly.day_of_week == {0} and weekly.hour == {3}
    assert entries["run-monthly-predictions"]["schedule"].day_of_month == {2}
    # Default times fire once a day / week / month at the documented UTC instants.
    default = beat_schedule(Settings())["run-daily-predictions"]["schedule"]
    assert default.minute == {15} and default.hour == {4}

def test_schedule_types_follow_the_contract_schedule_column():
    contract = {
        "daily": {"demand_hourly", "demand_daily", "item_demand_daily", "prep_time", "stock_daily", "stockout",
                  "reorder", "anomaly"},
        "weekly": {"churn", "ltv", "lead_time"},
        "monthly": {"price_recommendation"},
    }
    for name in SCHEDULES:
        declared = {u.prediction_type for u in units_for(name)}
        assert declared <= contract[name], (name, declared - contract[name])

def test_interval_specs_are_for_drills_and_expire_at_one_and_a_half_intervals():
    when, seconds = parse_spec("every 2s")
    assert isinstance(when, every) and seconds == 2.0
    entry = beat_schedule(Settings(schedules={"monthly": "every 2s"}))["run-monthly-predictions"]
    assert entry["options"]["expires"] == 3.0

@pytest.mark.parametrize("spec", ["15 4 * *", "daily", "every -3s", "61 4 * * *", "15 4 * * 9"])
def test_bad_schedule_settings_are_refused_with_the_spec_named(spec):
    with pytest.raises(ScheduleSpecError, match="crontab|interval|5 crontab"):
        parse_spec(spec)
