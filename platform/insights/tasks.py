"""Celery adapters for Insights: an id in, one service call."""

from celery import shared_task


@shared_task(name="insights.change_set_fetch", acks_late=True, ignore_result=True)
def change_set_fetch(change_set_id: int) -> None:
    """Ask the forge for a release's commits; only a pending change set is fetched, so a redelivery is harmless."""
    from insights import services

    services.change_set_fetch(change_set_id=change_set_id)


@shared_task(name="insights.rollups_refresh", acks_late=True, ignore_result=True)
def rollups_refresh(deployment_id: int) -> None:
    """Rewrite the daily rollup rows a change to this deployment can alter; idempotent (rows are rewritten whole)."""
    from insights import rollups

    rollups.rollups_refresh(deployment_id=deployment_id)


@shared_task(name="insights.rollups_sweep", ignore_result=True)
def rollups_sweep() -> int:
    """Periodic: build the rollups the first time, then rewrite the last two days (a safety net for lost messages)."""
    from insights import rollups

    return rollups.rollups_sweep()
