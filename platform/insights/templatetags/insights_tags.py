"""A service's own DORA figures for its catalog page, so the page's view needs to know nothing about Insights."""

from typing import Any
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone

from catalog.models import Service
from insights import present, selectors

register = template.Library()

SERVICE_WINDOW_DAYS = 30


@register.simple_tag
def dora_service(service: Service) -> dict[str, Any]:
    """The last 30 days in production (protected environments), in the portal's time zone: two queries."""
    zone = ZoneInfo(settings.TIME_ZONE)
    window = selectors.window_last(SERVICE_WINDOW_DAYS, zone=zone, today=timezone.now().astimezone(zone).date())
    scope = selectors.Scope("service", service.pk, service.slug, service.name)
    environments = selectors.environments_default()
    figures = selectors.dora_figures(scope=scope, window=window, environments=environments)
    return {
        "scope": scope,
        "window": window,
        "figures": figures,
        "tiles": present.tiles(figures, scope=scope, environment=""),
    }
