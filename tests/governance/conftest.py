"""Fixtures for governance tests: staging and production, deploy targets for world's service, policies by admins."""

import pytest

from deployments.models import Environment
from governance import services
from governance.models import Policy


@pytest.fixture
def staging(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Staging", slug="staging", order=1)


@pytest.fixture
def production(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Production", slug="production", order=2, protected=True)


@pytest.fixture
def policy(world):  # type: ignore[no-untyped-def]
    """`policy(name, rule, **fields)` saves a policy as the platform admin."""

    def make(name: str, rule: str, **fields: object) -> Policy:
        fields.setdefault("message", f"{name} failed")
        return services.policy_save(user=world.staff, name=name, rule=rule, **fields)  # type: ignore[arg-type]

    return make
