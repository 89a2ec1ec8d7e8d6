"""Shared fixtures: people in four roles around one service, API clients, and the PostgreSQL-only selection."""

from dataclasses import dataclass

import pytest
from django.db import connection
from rest_framework.test import APIClient

from catalog.models import Service
from teams.models import Membership, Team
from tests.factories import MembershipFactory, TeamFactory, UserFactory, service_make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) PostgreSQL-only tests when the suite runs on SQLite, the embedded default."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    selected = [item for item in items if "postgres_only" not in item.keywords]
    deselected = [item for item in items if "postgres_only" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache (Redis in CI keeps keys across tests; the database does not)."""
    from django.core.cache import cache

    from accounts.tokens import held_forget
    from catalog.text_search import modes as search_modes
    from portal.pagination import estimates

    cache.clear()
    estimates.clear()  # the planner's estimates a process remembers are of the last test's tables
    held_forget()  # and the tokens it holds, the last test's
    search_modes.clear()  # and how the last test's searches were answered


@dataclass
class World:
    """One service owned by `owner_team`; `owner` is in that team, `outsider` in another, `staff` is an admin."""

    service: Service
    owner_team: Team
    other_team: Team
    owner: object
    outsider: object
    staff: object


@pytest.fixture
def world(db: None) -> World:
    owner_team, other_team = TeamFactory(name="Payments", slug="payments"), TeamFactory(name="Search", slug="search")
    owner = MembershipFactory(team=owner_team, user=UserFactory(username="olivia"), role=Membership.Role.MEMBER).user
    outsider = MembershipFactory(team=other_team, user=UserFactory(username="oscar")).user
    staff = UserFactory(username="stella", is_staff=True)
    service = service_make(owner=owner_team, slug="payments-api", name="Payments API", tier=1)
    return World(
        service=service, owner_team=owner_team, other_team=other_team, owner=owner, outsider=outsider, staff=staff
    )


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"
