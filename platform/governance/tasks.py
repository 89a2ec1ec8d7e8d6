"""Celery adapters for governance: ids in, one service call each."""

from celery import shared_task


@shared_task(name="governance.approval_notify", acks_late=True, ignore_result=True)
def approval_notify(request_id: int) -> int:
    """Email the people who may answer an approval request; sending twice only repeats the email."""
    from governance import notifications

    return notifications.approval_request_mail(request_id=request_id)


@shared_task(name="governance.expire_approvals", ignore_result=True)
def expire_approvals() -> int:
    """Periodic: cancel the deployments whose approval request ran out of time."""
    from governance import approvals

    return approvals.requests_expire()
