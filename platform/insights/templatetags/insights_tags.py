"""A service's or a team's own DORA figures for its catalog or team page, so those views know nothing of Insights."""

from typing import Any
from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone

from catalog.models import Service
from insights import present, selectors
from teams.models import Team

register = template.Library()

SERVICE_WINDOW_DAYS = 30


def _recent(scope: selectors.Scope) -> dict[str, Any]:
    """The last 30 days in production (protected environments), in the portal's time zone: two queries."""
    figures = selectors.dora_recent(scope=scope, days=SERVICE_WINDOW_DAYS)
    zone = ZoneInfo(settings.TIME_ZONE)
    window = selectors.window_last(SERVICE_WINDOW_DAYS, zone=zone, today=timezone.now().astimezone(zone).date())
    return {
        "scope": scope,
        "window": window,
        "figures": figures,
        "tiles": present.tiles(figures, scope=scope, environment=""),
    }


@register.simple_tag
def dora_service(service: Service) -> dict[str, Any]:
    return _recent(selectors.Scope("service", service.pk, service.slug, service.name))


@register.simple_tag
def dora_team(team: Team) -> dict[str, Any]:
    """The team's figures (the services it owns today) for its team page and its reviews."""
    return _recent(selectors.Scope("team", team.pk, team.slug, team.name))
