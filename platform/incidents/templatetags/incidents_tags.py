"""The team page's open postmortem action items (overdue ones first), without the teams app importing incidents."""

from typing import Any

from django import template
from django.utils import timezone

from incidents.models import ActionItem

register = template.Library()


@register.inclusion_tag("incidents/_team_actions.html")
def team_action_items(team: Any) -> dict[str, Any]:
    items = list(
        ActionItem.objects.filter(owner_team=team, status=ActionItem.Status.OPEN)
        .select_related("postmortem__incident")
        .order_by("due_date", "pk")[:50]
    )
    today = timezone.localdate()
    return {"items": items, "overdue": sum(1 for item in items if item.due_date < today), "team": team}
