from typing import Any

from django import template

from catalog.models import Service
from deployments.models import Environment
from flags.models import Flag

register = template.Library()


@register.simple_tag
def flag_table(service: Service) -> dict[str, Any]:
    """The service's flags with each environment's setting, in environment order: one query for a service without
    flags (the service page's usual case), three with."""
    flags = list(Flag.objects.filter(service=service).prefetch_related("settings").order_by("key"))
    if not flags:
        return {"environments": [], "rows": []}
    environments = list(Environment.objects.order_by("order"))
    rows = []
    for flag in flags:
        by_env = {setting.environment_id: setting for setting in flag.settings.all()}
        rows.append({"flag": flag, "cells": [(env, by_env.get(env.pk)) for env in environments]})
    return {"environments": environments, "rows": rows}
