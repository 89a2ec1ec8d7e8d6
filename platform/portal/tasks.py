"""Portal-wide tasks: a health check that proves a worker is consuming and can reach the database."""

import structlog
from celery import shared_task
from django.db import connection

log = structlog.get_logger(__name__)


@shared_task(name="portal.health_check")
def health_check() -> dict[str, object]:
    """Answer with the worker's view of the world; logs the publishing request's id when there was one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        database_ok = cursor.fetchone() == (1,)
    context = structlog.contextvars.get_contextvars()
    log.info("health_check", database_ok=database_ok)
    return {"database": database_ok, "request_id": context.get("request_id")}
