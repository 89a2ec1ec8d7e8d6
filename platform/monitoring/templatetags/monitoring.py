from django import template

from catalog.models import Service
from monitoring.selectors import Health, service_health

register = template.Library()

# Reuses the house's status colours: green passing, amber in trouble, red failing, grey for unknown.
BADGE = {"healthy": "badge-dep-succeeded", "degraded": "badge-dep-paused", "down": "badge-dep-failed"}


@register.simple_tag
def health_rows(service: Service) -> list[dict[str, object]]:
    """The service's checks with their health, for templates/monitoring/_service_health.html (four queries)."""
    rows = []
    for check, health in service_health(service):
        rows.append({"check": check, "health": health, "badge": BADGE.get(health.status, "")})
    return rows


@register.filter
def uptime(health: Health, window: str) -> str:
    value = health.uptime.get(window)
    if value is None:
        return "—"
    # Two decimals only where they matter: 99.95 % and 100 % must not both read "100 %".
    text = f"{value:.2f}" if 99 <= value < 100 else f"{value:.0f}"
    return f"{text}\u00a0%"  # a no-break space: the sign stays with its number
