"""The service page's ownership card: when ownership was last verified and by whom, an orphan flag, the open review
item and a handover waiting for the receiving team. Rendered here so that the catalog's page needs no review code."""

from typing import Any

from django import template
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from catalog.models import Service
from reviews import selectors, services
from reviews.models import Campaign, Item

register = template.Library()


@register.inclusion_tag("reviews/_ownership_card.html", takes_context=True)
def ownership_card(context: dict[str, Any], service: Service) -> dict[str, Any]:
    try:
        ownership = service.ownership  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        ownership = None
    # The page's parts (catalog.selectors.service_page_parts) say whether there is an open item or handover to read.
    parts = context.get("page_parts")
    absent: frozenset[str] = (
        frozenset({"review_items", "handovers"} - parts) if isinstance(parts, frozenset | set) else frozenset()
    )
    item = None
    if "review_items" not in absent:
        item = (
            Item.objects.select_related("campaign")
            .filter(service=service, status=Item.Status.OPEN, campaign__status=Campaign.Status.OPEN)
            .only("service_id", "due_on", "campaign__title")  # what the card shows: its link, campaign and due date
            .order_by("due_on")
            .first()
        )
    period = services.verification_period_days(service.tier)
    verified_at = ownership.verified_at if ownership else None
    return {
        "service": service,
        "ownership": ownership,
        "period": period,
        "due": verified_at is not None and (timezone.now() - verified_at).days > period,
        "item": item,
        "handover": None if "handovers" in absent else selectors.handover_open_for_service(service=service),
        "today": timezone.localdate(),
    }
