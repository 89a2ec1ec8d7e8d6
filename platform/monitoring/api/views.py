"""Health check API: read by everyone signed in; written by whoever may change the service (as on its page)."""

from typing import Any

from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from monitoring import selectors, services
from monitoring.api.serializers import HealthCheckSerializer


class HealthCheckViewSet(viewsets.ModelViewSet):
    """HTTP health checks per service and environment, each with its status and uptime.
    Filter with ?service__slug=<slug>&environment__slug=<slug>."""

    serializer_class = HealthCheckSerializer
    filterset_fields = {"service__slug": ["exact"], "environment__slug": ["exact"], "enabled": ["exact"]}

    def get_queryset(self) -> Any:
        return selectors.health_checks_visible()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        checks = list(page) if page is not None else []
        serializer = self.get_serializer(
            checks, many=True, context={**self.get_serializer_context(), "health": selectors.health_for_checks(checks)}
        )
        return self.get_paginated_response(serializer.data)

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        service = data.pop("service")
        serializer.instance = services.health_check_create(user=self.request.user, service=service, **data)

    def perform_update(self, serializer: Any) -> None:
        data = {k: v for k, v in serializer.validated_data.items() if k not in ("service", "environment")}
        serializer.instance = services.health_check_update(user=self.request.user, check=serializer.instance, **data)

    def perform_destroy(self, instance: Any) -> None:
        services.health_check_delete(user=self.request.user, check=instance)
