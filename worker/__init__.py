"""The process side of the pipeline: the run loop, the writer of predictions and run records, settings, engines, Celery app and beat wiring, the CLI."""
