"""What an on-call engineer asks first, read from the predictions database: did the runs happen,
are the numbers the RMS shows fresh, did the RMS hear about them; and which model serves each
prediction type.

``status`` gives a Nagios-style verdict (0 ok, 1 warning, 2 critical) so a monitoring system can
call ``python -m worker status`` as a check; ``models`` is the registry as an admin reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from core.replica import ReplicaReader
from models.artifacts import verify_artifact

OK, WARNING, CRITICAL = 0, 1, 2
VERDICT = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}
# A schedule whose last run is older than this (or missing) is late: one missed beat plus margin.
LATE_AFTER = {"daily": timedelta(hours=36), "weekly": timedelta(days=8), "monthly": timedelta(days=32)}


@dataclass
class Status:
    """Facts and the problems found in them; ``code`` is the worst problem's level."""

    schedules: list[dict[str, Any]] = field(default_factory=list)
    prediction_types: list[dict[str, Any]] = field(default_factory=list)
    failed_deliveries: int = 0
    replica_role_risks: list[str] | None = None  # None: the replica's role was not checked
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def code(self) -> int:
        return max((level for level, _ in self.problems), default=OK)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": VERDICT[self.code],
            "code": self.code,
            "schedules": self.schedules,
            "prediction_types": self.prediction_types,
            "failed_deliveries": self.failed_deliveries,
            "replica_role_risks": self.replica_role_risks,
            "problems": [{"level": VERDICT[level], "problem": p} for level, p in self.problems],
        }


def replica_role_problems(replica: Engine, *,
                          refuse_writable_role: bool) -> tuple[list[str] | None, list[tuple[int, str]]]:
    """What the replica's role can do beyond reading (``ReplicaReader.role_risks``) and the
    problems it makes: WARNING for a role that can write or is a superuser (the reader's guards are
    then all that stands between a bug and the RMS's data), CRITICAL when
    ``RMSML_REPLICA__REFUSE_WRITABLE_ROLE`` is set (the next run will be refused). A replica that
    does not answer is a WARNING (None risks): the next run's start will say more."""
    try:
        risks = ReplicaReader(replica).role_risks()
    except SQLAlchemyError as exc:
        return None, [(WARNING, f"replica role not checked: the replica did not answer ({type(exc).__name__})")]
    if refuse_writable_role:
        return risks, [(CRITICAL, f"replica role can write: {r}; RMSML_REPLICA__REFUSE_WRITABLE_ROLE is set, so "
                                  "every run will be refused: use a SELECT-only role (docs/replica.md)") for r in risks]
    return risks, [(WARNING, f"replica role can write: {r}; use a SELECT-only role (docs/replica.md)") for r in risks]


def read_status(engine: Engine, schedules: tuple[str, ...], *, now: datetime | None = None,
                replica: Engine | None = None, refuse_writable_role: bool = False) -> Status:
    """The last run of each schedule, the freshness of each prediction type, undelivered events,
    and what the replica's role can do beyond reading.

    Args:
        schedules: the schedules to check (a deployment that never runs monthly passes fewer).
        now: the instant to judge ages against (UTC); defaults to the wall clock.
        replica: the replica's engine, to check its role (``replica_role_problems``); None skips it.
        refuse_writable_role: the ``replica.refuse_writable_role`` setting (a risky role is then critical).
    """
    now = now or datetime.now(timezone.utc)
    status = Status()
    if replica is not None:
        status.replica_role_risks, problems = replica_role_problems(replica, refuse_writable_role=refuse_writable_role)
        status.problems.extend(problems)
    with engine.connect() as conn:
        last = {
            r.schedule: r
            for r in conn.execute(
                text(
                    "SELECT DISTINCT ON (schedule) schedule, id, status, as_of, started_at, finished_at, error "
                    "FROM ml_run ORDER BY schedule, started_at DESC"
                )
            )
        }
        types = conn.execute(
            text(
                "SELECT prediction_type, count(*) AS n, max(generated_at) AS newest, "
                "count(*) FILTER (WHERE expires_at < :now) AS expired FROM m_l_predictions "
                "GROUP BY prediction_type ORDER BY prediction_type"
            ),
            {"now": now},
        ).mappings().all()
        status.failed_deliveries = int(conn.execute(
            text("SELECT count(*) FROM ml_webhook_delivery WHERE status IN ('failed', 'exhausted')")
        ).scalar() or 0)
    for schedule in schedules:
        run = last.get(schedule)
        if run is None:
            status.schedules.append({"schedule": schedule, "last_run": None})
            status.problems.append((WARNING, f"{schedule}: no run recorded yet"))
            continue
        age = now - run.started_at
        status.schedules.append({
            "schedule": schedule, "last_run": str(run.id), "status": run.status,
            "started_at": run.started_at.isoformat(), "age_hours": round(age.total_seconds() / 3600, 1),
        })
        if age > LATE_AFTER.get(schedule, timedelta(days=1)):
            status.problems.append((CRITICAL, f"{schedule}: last run started {age.total_seconds() / 3600:.0f} h ago"))
        if run.status == "failed":
            status.problems.append((CRITICAL, f"{schedule}: last run {run.id} failed"))
        elif run.status == "partial":
            status.problems.append((WARNING, f"{schedule}: last run {run.id} was partial"))
    for t in types:
        status.prediction_types.append({
            "prediction_type": t["prediction_type"], "rows": int(t["n"]),
            "newest_generated_at": t["newest"].isoformat() if t["newest"] else None, "expired_rows": int(t["expired"]),
        })
        if int(t["expired"]) == int(t["n"]):
            status.problems.append((CRITICAL, f"{t['prediction_type']}: every row is past expires_at"))
        elif int(t["expired"]):
            status.problems.append((WARNING, f"{t['prediction_type']}: {int(t['expired'])} row(s) past expires_at"))
    if status.failed_deliveries:
        status.problems.append((WARNING, f"{status.failed_deliveries} completion webhook(s) failed or exhausted "
                                         "(python -m worker webhooks list --failed)"))
    return status


def models_in_use(engine: Engine, *, verify: bool = True) -> list[dict[str, Any]]:
    """Per prediction type and shard, the newest active model: version, training window, the
    backtest scores of every candidate, when it was chosen, and whether its artifact still
    matches the checksum the registry recorded (``verify``)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (prediction_type, shard) prediction_type, shard, name, version, artifact_path, "
                "sha256, training_start, training_end, metrics, created_at FROM ("
                "  SELECT *, split_part(version, '.', -1) AS shard FROM ml_model_registry WHERE status = 'active'"
                ") r ORDER BY prediction_type, shard, created_at DESC"
            )
        ).mappings().all()
    out = []
    for r in rows:
        metrics = r["metrics"] or {}
        checksum = None
        if verify:
            try:
                verify_artifact(Path(r["artifact_path"]), r["sha256"])
                checksum = "ok"
            except FileNotFoundError:
                checksum = "missing"
            except Exception:
                checksum = "mismatch"
        out.append({
            "prediction_type": r["prediction_type"], "shard": r["shard"], "model": r["name"], "version": r["version"],
            "training_start": r["training_start"].isoformat() if r["training_start"] else None,
            "training_end": r["training_end"].isoformat() if r["training_end"] else None,
            "chosen_at": r["created_at"].isoformat(), "backtest": metrics.get("backtest"),
            "chain_decision": metrics.get("chain_decision"),
            "checksum": checksum,
        })
    return out


def chain_decisions(rows: list[dict[str, Any]]) -> list[str]:
    """One line per type decided for the whole chain (``models.chain_decision``): the method the
    shards apply, why, and the pooled backtest WAPE of each candidate behind it."""
    lines = []
    for ptype in sorted({r["prediction_type"] for r in rows if r.get("chain_decision")}):
        d = max((r for r in rows if r["prediction_type"] == ptype and r.get("chain_decision")),
                key=lambda r: r["chosen_at"])["chain_decision"]
        pooled = ", ".join(f"{n}={p['wape']:.3f}" for n, p in sorted((d.get("pooled") or {}).items())
                           if isinstance(p, dict) and isinstance(p.get("wape"), (int, float)))
        lines.append(f"{ptype}: the chain uses {d['name']} ({d['reason']})"
                     + (f"; pooled over {d.get('shards', 0)} shards: {pooled}" if pooled else ""))
    return lines
