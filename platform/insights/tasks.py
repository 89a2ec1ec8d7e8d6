"""Celery adapters for Insights: an id in, one service call."""

from celery import shared_task


@shared_task(name="insights.change_set_fetch", acks_late=True, ignore_result=True)
def change_set_fetch(change_set_id: int) -> None:
    """Ask the forge for a release's commits; only a pending change set is fetched, so a redelivery is harmless."""
    from insights import services

    services.change_set_fetch(change_set_id=change_set_id)
