from typing import Any

from rest_framework import viewsets

from audit import selectors
from audit.api.serializers import AuditEventSerializer
from audit.filters import AuditEventFilterSet


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The append-only audit log: listed and read, never changed or deleted through the API."""

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet

    def get_queryset(self) -> Any:
        return selectors.event_list_visible(user=self.request.user).order_by("-occurred_at", "-id")
