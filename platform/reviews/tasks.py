"""Celery adapters for ownership reviews: each calls one service function and is safe to run twice or at once."""

from celery import shared_task

from reviews import reminders, services


@shared_task(name="reviews.open_periodic_reviews", acks_late=True)
def open_periodic_reviews() -> int:
    """Open review items for services whose ownership verification is past its period (beat, hourly)."""
    return services.periodic_reviews_open()


@shared_task(name="reviews.send_reminders", acks_late=True)
def send_reminders() -> dict[str, int]:
    """Email today's review reminders; each item at most once a day, however many beats or workers run this."""
    return reminders.reminders_send()
