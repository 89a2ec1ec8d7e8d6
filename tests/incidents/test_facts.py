"""The `incidents` fact group: the service's open incidents, for policies and scorecards."""

import cel
import pytest

from governance import expressions, facts
from incidents import services
from tests.governance.test_facts import change_for, release_make

pytestmark = pytest.mark.django_db


def test_open_incidents_worst_first_and_resolved_ones_left_out(world, production) -> None:
    minor = services.incident_declare(title="Slow", severity="SEV3", services=[world.service], created_by=world.owner)
    major = services.incident_declare(title="Down", severity="SEV1", services=[world.service], created_by=world.owner)
    done = services.incident_declare(title="Old", severity="SEV1", services=[world.service], created_by=world.owner)
    services.incident_update(incident=done, user=world.owner, status="resolved")
    group = facts.facts_build(change=change_for(world, production, release_make(world.service)))["incidents"]
    assert [i["id"] for i in group["open"]] == [major.pk, minor.pk]
    assert group["open_count"] == 2 and group["worst_open_severity"] == "SEV1"
    assert group["open"][0]["status"] == "investigating" and group["open"][0]["started_at"].endswith("Z")


def test_a_policy_can_read_the_group(world, production) -> None:
    document = facts.facts_build(change=change_for(world, production, release_make(world.service)))
    assert document["incidents"] == {"open": [], "open_count": 0, "worst_open_severity": None}
    program = expressions.expression_check(
        'incidents.open_count == 0 && incidents.worst_open_severity != "SEV1"', returns=bool
    )
    assert program.execute(cel.Context(document)) is True


def test_past_the_listed_number_the_worst_are_listed_and_all_are_counted(world, production) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from incidents.models import Incident

    now = timezone.now()
    for index in range(facts.LISTED_INCIDENTS + 3):  # SEV3s, each an hour older than the one before
        incident = services.incident_declare(
            title=f"Slow {index}", severity="SEV3", services=[world.service], created_by=world.owner
        )
        Incident.objects.filter(pk=incident.pk).update(started_at=now - timedelta(hours=index + 1))
    worst = services.incident_declare(title="Down", severity="SEV2", services=[world.service], created_by=world.owner)
    Incident.objects.filter(pk=worst.pk).update(started_at=now - timedelta(days=3))
    group = facts.facts_build(change=change_for(world, production, release_make(world.service)))["incidents"]
    assert group["open_count"] == facts.LISTED_INCIDENTS + 4
    titles = [incident["title"] for incident in group["open"]]
    assert titles == ["Down"] + [f"Slow {index}" for index in range(facts.LISTED_INCIDENTS - 1)]  # newest first
