"""Celery adapters for scorecards: an id in, one service call. Every task is safe to run twice (scoring upserts)."""

from celery import shared_task
from django.core.cache import cache

from scorecards import services
from scorecards.models import Scorecard


@shared_task(name="scorecards.rescore_service", acks_late=True)
def rescore_service(service_id: int) -> None:
    """Rescore one service on every scorecard after a change to its facts."""
    cache.delete(services.pending_key(service_id))  # before reading: a change from now on asks again
    services.scores_compute(service_ids=[service_id])


@shared_task(name="scorecards.rescore_scorecard", acks_late=True)
def rescore_scorecard(scorecard_id: int) -> None:
    """Score every service on one scorecard (after it changed)."""
    scorecard = Scorecard.objects.filter(pk=scorecard_id).first()
    if scorecard is not None:
        services.scores_compute(scorecards=[scorecard])


@shared_task(name="scorecards.rescore_all", acks_late=True, time_limit=1800, soft_time_limit=1700)
def rescore_all() -> None:
    """Nightly: every service on every scorecard, so facts that change with time alone (a review ageing) count,
    and every service has a history row for the day."""
    services.scores_compute()


@shared_task(name="scorecards.initiatives_tick", acks_late=True)
def initiatives_tick() -> None:
    """Hourly: end the initiatives whose deadline passed, and send today's reminders (each team once a day)."""
    services.initiatives_due_end()
    services.initiative_reminders_send()
