"""Feature flags API (read): every signed-in user reads a service's flags and what each environment serves, as on
the flag pages. Changes go through the pages for now (docs/flags.md)."""

from typing import Any

from django.db.models import Prefetch
from rest_framework import viewsets

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
