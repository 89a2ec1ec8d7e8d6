from typing import Any

from django import template

from catalog.models import Service
from deployments.models import Environment
from flags.models import Flag
from flags.usage import flag_debt

register = template.Library()


@register.simple_tag
def flag_table(service: Service, page_parts: object = None) -> dict[str, Any]:
    """The service's flags with each environment's setting, in environment order, and the stale ones' reason (read
    from the same rows): one query for a service without flags (the service page's usual case), three with; none
    when the service page's `page_parts` (a set) say it has no flag."""
    if isinstance(page_parts, frozenset | set) and "flags" not in page_parts:
        return {"environments": [], "rows": [], "stale": 0}
    flags = list(Flag.objects.filter(service=service).prefetch_related("settings").order_by("key"))
    if not flags:
        return {"environments": [], "rows": [], "stale": 0}
    environments = list(Environment.objects.order_by("order"))
    rows = []
    for flag in flags:
        settings = flag.settings.all()
        by_env = {setting.environment_id: setting for setting in settings}
        cells = [(env, by_env.get(env.pk)) for env in environments]
        rows.append({"flag": flag, "cells": cells, "debt": flag_debt(flag, settings)})
    return {"environments": environments, "rows": rows, "stale": sum(1 for row in rows if row["debt"])}
