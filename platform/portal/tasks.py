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


SEARCH_TABLES = ("catalog_service", "catalog_system", "teams_team", "techdocs_runbook", "techdocs_adr")


@shared_task(name="portal.search_index", acks_late=True)
def search_index(batch: int = 2000) -> int:
    """Fill the search vectors that a bulk import left empty; safe to run at any time and more than once."""
    if connection.vendor != "postgresql":
        return 0
    done = 0
    with connection.cursor() as cursor:
        for table in SEARCH_TABLES:
            while True:
                # Touching the row makes its trigger compute the vector (deferral is off outside imports).
                cursor.execute(
                    f"UPDATE {table} SET id = id WHERE id IN "  # noqa: S608 - table names are ours
                    f"(SELECT id FROM {table} WHERE search_tsv IS NULL LIMIT %s)",
                    [batch],
                )
                done += cursor.rowcount
                if cursor.rowcount < batch:
                    break
    if done:
        log.info("search_index", rows=done)
    return done
