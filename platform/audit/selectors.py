"""Reads of the audit log."""

from django.db.models import QuerySet

from audit.models import AuditEvent


def event_list_visible(*, user: object) -> QuerySet[AuditEvent]:
    """Every signed-in user may read the audit log: who changed what is part of knowing who owns what."""
    return AuditEvent.objects.select_related("actor")


def event_list_for_service(*, service_id: int, limit: int = 10) -> list[AuditEvent]:
    """The most recent events recorded against one service (the service itself and its dependencies)."""
    return list(AuditEvent.objects.filter(service_id=service_id).order_by("-occurred_at", "-id")[:limit])
