"""Fixtures for incidents: production and staging, a clock, and deployments written as the engine leaves them."""

from datetime import UTC, datetime, timedelta

import pytest

from deployments.models import DeployTarget, Environment, RuntimeKind, State
from incidents import services
from tests.insights.support import deployment_make, release_make

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon


@pytest.fixture
def production(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Production", slug="production", order=2, protected=True)


@pytest.fixture
def staging(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Staging", slug="staging", order=1)


@pytest.fixture
def shipped(world, production):  # type: ignore[no-untyped-def]
    """Payments API in production: release A ran, then B replaced it 30 minutes before T0 (both succeeded)."""
    DeployTarget.objects.create(service=world.service, environment=production, runtime=RuntimeKind.SIMULATED)
    a, b = release_make(world.service), release_make(world.service)
    good = deployment_make(
        world.service,
        production,
        State.SUCCEEDED,
        started=T0 - timedelta(days=1),
        finished=T0 - timedelta(days=1),
        release=a,
    )
    bad = deployment_make(
        world.service,
        production,
        State.SUCCEEDED,
        started=T0 - timedelta(minutes=30),
        finished=T0 - timedelta(minutes=25),
        release=b,
        previous_release=a,
    )
    return good, bad


@pytest.fixture
def incident(world):  # type: ignore[no-untyped-def]
    return services.incident_declare(
        title="Payments time out", severity="SEV2", services=[world.service], created_by=world.owner, started_at=T0
    )
