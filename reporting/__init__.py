"""Reporting: realised accuracy of earlier predictions, drift alerts and the HTML run report.

Layer 2: imports ``core``, ``features``, ``models`` and ``webhooks`` only, never the worker. The
callers (``worker.runs.finish_run``, the ``report`` CLI command) hand in the predictions engine, a
``ReplicaReader`` on the replica and the settings (docs/accuracy.md).

- ``reporting.accuracy``: the scoring step after a run (``after_run``, ``assess_run``)
- ``reporting.drift``: the alert policy (pure functions on frames)
- ``reporting.report``: the HTML run report
- ``reporting.records``: their SQL on the predictions database (reads; writes of ``ml_accuracy`` and
  ``ml_drift_alert`` only: the run record, registry and history are written through the worker's
  ``RunRecords``, handed in as ``RunRecordWriter``)
"""
