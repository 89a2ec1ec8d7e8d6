"""`{% service_scores service as scores %}`: the service page's Scorecards section, two queries."""

from django import template

from catalog.models import Service
from scorecards import selectors

register = template.Library()


@register.simple_tag
def service_scores(service: Service, page_parts: object = None) -> list[selectors.ServiceScore]:
    """None to read for a service the page's `page_parts` (a set) say no enabled scorecard scores."""
    if isinstance(page_parts, frozenset | set) and "scores" not in page_parts:
        return []
    return selectors.scores_for_services(service_ids=[service.pk])[service.pk]
