"""Violation events -> durable cases: hand-off spool, case service, Celery tasks, relay."""
