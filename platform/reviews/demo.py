"""The demo's ownership reviews: some services verified weeks or months ago, and a quarterly campaign over the tier 1
and 2 services with a few answers, so that `make run` shows progress, a burn-up and overdue-free reminders."""

from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from catalog.models import Service
from reviews import services
from reviews.models import Campaign, Item, Ownership


def reviews_load(*, admin: User, lead: User) -> int:
    """Make the demo's reviews once (a later load changes nothing); returns the campaign's item count, or 0."""
    if Campaign.objects.filter(kind=Campaign.Kind.MANUAL).exists():
        return 0
    now = timezone.now()
    ages = [20, 75, 140, 200, 400]
    for n, service in enumerate(Service.objects.exclude(lifecycle__in=Service.RETIRING).order_by("slug")):
        if n % 3 == 2:
            continue  # a third never verified
        Ownership.objects.update_or_create(
            service=service,
            defaults={
                "verified_at": now - timedelta(days=ages[n % len(ages)]),
                "verified_by": admin,
                "verified_by_repr": admin.get_username(),
            },
        )
    campaign = services.campaign_open(
        opened_by=admin,
        title="Quarterly ownership review",
        scope={"verified": "90"},
        due_on=timezone.localdate() + timedelta(days=10),
        message="Please confirm who owns each of your services and that its on-call link and runbooks are right.",
    )
    mine = list(
        Item.objects.filter(campaign=campaign, service__owner__memberships__user=lead)
        .select_related("service", "campaign")
        .order_by("service__slug")[:2]
    )
    services.items_confirm(items=mine, answered_by=lead, comment="Checked with the team.")
    return campaign.items.count()
