"""No planted PII value (names, emails, phones, birth dates) reaches any output of a run.

Runs the customer and kitchen units through the real run loop on the synthetic chain, then scans
every output: prediction rows and their details, run and shard records, the model registry, every
artifact file, and every log record emitted during the run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import text

from tests.conftest import REPLICA_URL
from worker import catalog, db, runs

AS_OF = "2026-11-01T00:00:00Z"
MINE = ("churn", "ltv", "prep_time")

pytestmark = pytest.mark.slow


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record) + " " + repr(record.args))


def _planted_pii() -> dict[str, set[str]]:
    conn = psycopg2.connect(REPLICA_URL)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT first_name, last_name, email, phone, birth_date FROM customers_customerprofile")
            rows = cur.fetchall()
    finally:
        conn.close()
    return {
        "email": {r[2] for r in rows if r[2]},
        "phone": {r[3] for r in rows if r[3]},
        "birth_date": {r[4].isoformat() for r in rows if r[4]},
        "full_name": {f"{r[0]} {r[1]}" for r in rows if r[0] and r[1]},
        "last_name": {r[1] for r in rows if r[1] and len(r[1]) >= 5},
    }


def _leaks(blob: str, pii: dict[str, set[str]]) -> list[str]:
    found = []
    words = set(re.findall(r"[A-Za-z][A-Za-z'\-]+", blob))
    for kind, values in pii.items():
        if kind == "last_name":
            found += [f"{kind}:{v}" for v in values & words]
        else:
            found += [f"{kind}:{v}" for v in values if v in blob]
    return found


def test_no_pii_in_any_output_of_a_run(seeded_replica, clean_predictions, monkeypatch):
    real = catalog.units_for
    monkeypatch.setattr(catalog, "units_for", lambda schedule: [u for u in real(schedule) if u.prediction_type in MINE])
    handler = _Collect()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        weekly = runs.execute_run("weekly", AS_OF, [3])
        daily = runs.execute_run("daily", AS_OF, [3])
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert weekly["status"] == "succeeded" and daily["status"] == "succeeded", (weekly, daily)
    assert set(weekly["rows_written"]) == {"churn", "ltv"} and "prep_time" in daily["rows_written"]

    pii = _planted_pii()
    assert sum(len(v) for v in pii.values()) > 1000  # the generator really planted PII to look for
    with db.predictions_engine().connect() as conn:
        blobs = {
            table: "\n".join(str(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {table}")).all())
            for table in ("m_l_predictions", "ml_run", "ml_run_shard", "ml_model_registry")
        }
        paths = [p for (p,) in conn.execute(text("SELECT artifact_path FROM ml_model_registry")).all()]
    assert len(blobs["m_l_predictions"]) > 10_000
    for name, blob in blobs.items():
        assert not _leaks(blob, pii), name
    files = [f for p in paths for f in Path(p).rglob("*") if f.is_file()]
    assert files
    for f in files:
        assert not _leaks(f.read_bytes().decode("utf-8", "replace"), pii), f
    assert handler.lines
    assert not _leaks("\n".join(handler.lines), pii)


def test_the_scan_finds_a_leak_when_there_is_one():
    pii = {"email": {"ann.lee12@example.com"}, "phone": set(), "birth_date": {"1990-02-03"},
           "full_name": set(), "last_name": {"Okafor"}}
    assert _leaks('{"note": "write to ann.lee12@example.com"}', pii)
    assert _leaks("born 1990-02-03", pii)
    assert _leaks("customer Okafor lapsed", pii)
    assert not _leaks('{"risk_level": "high", "days_since_last_order": 90}', pii)
