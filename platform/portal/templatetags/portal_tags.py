"""Small template helpers."""

from typing import Any

from django import template
from django.forms import BoundField
from django.http import QueryDict
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag(takes_context=True)
def query_without(context: template.Context, *names: str) -> str:
    """The current query string without the given parameters, ending in '&' when not empty."""
    params: QueryDict = context["request"].GET.copy()
    for name in names:
        params.pop(name, None)
    encoded = params.urlencode()
    return f"{encoded}&" if encoded else ""


@register.simple_tag
def fast_select(field: BoundField) -> SafeString:
    """A <select> for a filter field, built in Python: the widget templates cost ~0.1 ms per <option>, and the
    catalog's owner filter alone has hundreds of teams."""
    selected = str(field.value() or "")
    choices: Any = getattr(field.field, "choices", ())
    options = format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((value, mark_safe(" selected") if str(value) == selected else "", label) for value, label in choices),  # noqa: S308
    )
    return format_html('<select name="{}" id="{}">{}</select>', field.html_name, field.auto_id, options)
