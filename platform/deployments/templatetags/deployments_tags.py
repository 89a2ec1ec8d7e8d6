"""Template filters for the deployment pages, so a page formats a figure exactly as the timeline's text does."""

from django import template

from deployments import analysis

register = template.Library()


@register.filter
def percent(rate: float | None) -> str:
    """A rate (0.025) as "2.5 %", through the same function that writes the analysis reasons; "–" when unknown."""
    if rate is None or rate == "":
        return "–"
    return analysis.percent(float(rate))
