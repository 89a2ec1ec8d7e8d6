"""Feature flags API (read): every signed-in user reads a service's flags and what each environment serves, as on
the flag pages; its owner team and platform admins pull the kill switch. Other changes go through the pages for now
(docs/flags.md)."""

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.permissions import user_can
from flags import services
from flags.api.serializers import FlagSerializer
from flags.models import Flag, FlagSetting


class FlagViewSet(viewsets.ReadOnlyModelViewSet):
    """Feature flags with each environment's setting. Filter with ?service__slug=<slug>&key=<key>."""

    serializer_class = FlagSerializer
    filterset_fields = {"service__slug": ["exact"], "key": ["exact"], "kind": ["exact"]}

    def get_queryset(self) -> Any:
        settings = FlagSetting.objects.select_related("environment").order_by("environment__order")
        return (
            Flag.objects.select_related("service")
            .prefetch_related(Prefetch("settings", queryset=settings))
            .order_by("service__slug", "key")
        )

    @extend_schema(request=None, responses={200: FlagSerializer, 403: None, 404: None})
    @action(detail=True, methods=["post"])
    def kill(self, request: Request, pk: str | None = None) -> Response:
        """The kill switch: the flag off in every environment at once (its owner team and platform admins)."""
        flag = self.get_object()
        if not user_can(request.user, "catalog.change_service", flag.service):
            raise PermissionDenied(
                f"Only {flag.service.owner} (or a platform admin) can change {flag.service}'s flags."
            )
        services.kill(actor=request.user, flag=flag)
        return Response(self.get_serializer(self.get_queryset().get(pk=flag.pk)).data)
