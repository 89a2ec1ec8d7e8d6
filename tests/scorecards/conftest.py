"""Fixtures for scorecards: a small scorecard saved by the platform admin, and a way to write scorecard files."""

from typing import Any

import pytest

from scorecards import services
from scorecards.models import Scorecard


def basic(**overrides: Any) -> dict[str, Any]:
    """Bronze: a runbook; Silver: an ADR too; Gold: on-call link. Only production services are scored."""
    definition: dict[str, Any] = {
        "name": "basics",
        "title": "Basics",
        "filter": "service.lifecycle == 'production'",
        "levels": [
            {
                "name": "Bronze",
                "rules": [
                    {"key": "runbook", "name": "A runbook", "rule": "service.runbooks >= 1", "why": "w", "fix": "f"}
                ],
            },
            {
                "name": "Silver",
                "rules": [{"key": "adr", "name": "An ADR", "rule": "service.adrs >= 1", "why": "w", "fix": "f"}],
            },
            {
                "name": "Gold",
                "rules": [
                    {"key": "on-call", "name": "On call", "rule": "service.on_call_url != ''", "why": "w", "fix": "f"}
                ],
            },
        ],
    }
    definition.update(overrides)
    return definition


@pytest.fixture
def scorecard(world) -> Scorecard:  # type: ignore[no-untyped-def]
    return services.scorecard_save(user=world.staff, raw=basic())
