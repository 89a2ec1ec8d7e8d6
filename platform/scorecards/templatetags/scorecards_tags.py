"""`{% service_scores service as scores %}`: the service page's Scorecards section, two queries."""

from django import template

from catalog.models import Service
from scorecards import selectors

register = template.Library()


@register.simple_tag
def service_scores(service: Service) -> list[selectors.ServiceScore]:
    return selectors.scores_for_services(service_ids=[service.pk])[service.pk]
