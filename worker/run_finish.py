"""The run's finishing step: close a run from what its shards committed, then assess it.

Below the start protocol (``worker.run_start`` closes abandoned runs through it) and the run loop
(``worker.runs``), which both call ``finish_run``.
"""

from __future__ import annotations

import logging

from core.replica import ReplicaReader
from reporting.accuracy import after_run
from worker import db
from worker.metrics import publish_run_metrics
from worker.records import RunRecords
from worker.settings import Settings, get_settings

log = logging.getLogger("worker.runs")  # the run loop's logger: a run's start, shards and finish log under one name


def finish_run(run_id: str, *, settings: Settings | None = None) -> dict:
    """Close the run from what was committed and return its record.

    Then score earlier runs' predictions, raise drift alerts and write the run report
    (``reporting.accuracy.after_run``, never raises): the record gains alerts, retrain, accuracy and
    report_path, which the completion webhook carries.

    Idempotent: a run already closed is returned as recorded, not counted again.
    """
    settings = settings or get_settings()
    replica, predictions = db.replica_engine(), db.predictions_engine()
    run_records = RunRecords(predictions)
    closed = run_records.closed_record(run_id)
    if closed is not None:
        # Finished before (a redelivered finish message): the same figures, nothing recounted, so
        # the completion event keeps its webhook-id and no receiver hears of it twice.
        log.info("run %s was already closed (%s); its record is returned unchanged", run_id, closed["status"])
        return closed
    record = run_records.finish_run(run_id)
    record.update(after_run(str(run_id), engine=predictions, reader=ReplicaReader(replica),
                            settings=settings.accuracy, model_store=settings.model_store.path,
                            run_records=run_records))
    publish_run_metrics(record, engine=predictions, textfile_dir=settings.metrics.textfile_dir,
                        pushgateway_url=settings.metrics.pushgateway_url)
    return record


__all__ = ["finish_run"]
