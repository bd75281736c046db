"""The completion event: its body, exactly as sent and stored, and its ids.

Why bodies are built once and stored: the signature covers the exact bytes, and a receiver that
dedupes by ``webhook-id`` must see the same event on every retry and redelivery. Why ids derive
from the event: emitting the same outcome twice (a redelivered finishing step) must find the same
delivery rows instead of announcing the run again.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

EVENT_TYPE = "predictions.completed"
# Ids derive from the event, so emitting the same outcome twice finds the same rows.
_ID_NAMESPACE = uuid.UUID("6f1c1d1e-8a53-4f0e-9f55-3c2b8f3b7a10")
_REASON_MAX_CHARS = 300

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


__all__ = ["EVENT_TYPE", "build_body", "delivery_id_for", "event_data", "failed_entries", "scrub_reason"]
