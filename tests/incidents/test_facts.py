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
