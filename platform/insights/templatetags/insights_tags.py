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


def _recent(scope: selectors.Scope, *, never_deployed: bool = False) -> dict[str, Any]:
    """The last 30 days in production (protected environments), in the portal's time zone: two queries, none for a
    scope known never to have deployed (its figures are all "no data")."""
    if never_deployed:
        figures = selectors.Figures(days=SERVICE_WINDOW_DAYS)
    else:
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
def dora_service(service: Service, page_parts: object = None) -> dict[str, Any]:
    """The service's figures; none to read for a service the page's `page_parts` (a set) say has no deployment."""
    never_deployed = isinstance(page_parts, frozenset | set) and "deployments" not in page_parts
    return _recent(selectors.Scope("service", service.pk, service.slug, service.name), never_deployed=never_deployed)


@register.simple_tag
def dora_team(team: Team) -> dict[str, Any]:
    """The team's figures (the services it owns today) for its team page and its reviews."""
    return _recent(selectors.Scope("team", team.pk, team.slug, team.name))
