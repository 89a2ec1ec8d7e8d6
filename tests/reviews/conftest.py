"""Fixtures for ownership reviews: the world of tests/conftest.py with leads on both teams."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import services
from reviews.models import Campaign
from teams.models import Membership
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture
def leads(world):  # type: ignore[no-untyped-def]
    """`lead` leads the owning team (Payments), `other_lead` the other one (Search)."""
    world.lead = MembershipFactory(
        team=world.owner_team, user=UserFactory(username="lena"), role=Membership.Role.LEAD
    ).user
    world.other_lead = MembershipFactory(
        team=world.other_team, user=UserFactory(username="sam"), role=Membership.Role.LEAD
    ).user
    return world


@pytest.fixture
def campaign(leads) -> Campaign:  # type: ignore[no-untyped-def]
    return services.campaign_open(
        opened_by=leads.staff,
        title="Q3 ownership review",
        scope={"owner": "payments"},
        due_on=timezone.localdate() + timedelta(days=14),
        message="Please check your services.",
    )
