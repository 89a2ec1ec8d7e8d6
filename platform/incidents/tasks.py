from celery import shared_task

from incidents import alertmanager


@shared_task(name="incidents.prune_alert_notifications", acks_late=True)
def prune_alert_notifications() -> int:
    """Forget Alertmanager notifications past the replay window; safe to run twice."""
    return alertmanager.notifications_prune()
