from typing import Any

from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated

from deployments import services
from deployments.api.serializers import EnvironmentSerializer
from deployments.models import Environment
from portal.api import StaffWritePermission


class EnvironmentViewSet(viewsets.ModelViewSet):
    """Deployment targets in promotion order; platform admins manage them."""

    serializer_class = EnvironmentSerializer
    permission_classes = [IsAuthenticated, StaffWritePermission]
    lookup_field = "slug"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    queryset = Environment.objects.order_by("order", "name")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.environment_create(created_by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.environment_update(
            environment=serializer.instance, updated_by=self.request.user, **serializer.validated_data
        )
