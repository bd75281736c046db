"""Thin Celery tasks: parse ids and plain JSON arguments, call ``worker.runs``, return a summary.

Nothing here that the CLI would need: both paths call the same functions in ``worker/``.
"""
