"""Incidents in the DORA figures, computed by hand: a change that caused an incident is a failed change, its
recovery runs from the incident's start to its mitigation, and a deployment marked as the fix is rework."""

from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import pytest

from deployments.models import State
from incidents import services
from insights import selectors
from tests.incidents.conftest import T0
from tests.insights.support import deployment_make

pytestmark = pytest.mark.django_db


def _report(world, production):  # type: ignore[no-untyped-def]
    window = selectors.Window(date(2026, 3, 1), date(2026, 3, 7), ZoneInfo("UTC"))
    scope = selectors.Scope("team", world.owner_team.pk, "payments", "Payments")
    return selectors.dora_report(scope=scope, window=window, environments=[production])


def test_an_incident_turns_a_success_into_a_failed_change_recovered_at_its_mitigation(world, production) -> None:
    at = T0 - timedelta(minutes=30)
    fine = deployment_make(world.service, production, State.SUCCEEDED, started=at - timedelta(hours=5), finished=at)
    culprit = deployment_make(world.service, production, State.SUCCEEDED, started=at, finished=at)
    rolled = deployment_make(
        world.service,
        production,
        State.ROLLED_BACK,
        started=T0 + timedelta(days=1),
        finished=T0 + timedelta(days=1, minutes=12),
    )
    before = _report(world, production).figures
    assert (before.successes, before.failures, before.rework) == (2, 1, 1)
    assert before.recovery_median == 12 * 60

    incident = services.incident_declare(
        title="Errors",
        severity="SEV2",
        services=[world.service],
        created_by=world.owner,
        started_at=T0,
        causes=[culprit],
    )
    services.incident_update(incident=incident, user=world.owner, status="mitigated", at=T0 + timedelta(minutes=48))
    fix = deployment_make(
        world.service,
        production,
        State.SUCCEEDED,
        started=T0 + timedelta(minutes=40),
        finished=T0 + timedelta(minutes=45),
    )
    services.incident_link(incident=incident, deployment=fix, relation="fix", user=world.owner)

    after = _report(world, production).figures
    # successes: fine and fix; failures: the rolled-back one and the culprit; rework: the rollback and the fix.
    assert (after.successes, after.failures, after.rework) == (2, 2, 2)
    assert after.change_fail_rate == 0.5 and after.rework_rate == 0.5
    # Recoveries: 12 minutes (rollback) and 48 minutes (incident start → mitigated): the median is 30 minutes.
    assert after.recovered == 2 and after.recovery_median == 30 * 60
    assert fine.pk and rolled.pk


def test_an_unmitigated_incident_is_a_failure_not_recovered_yet(world, production) -> None:
    culprit = deployment_make(world.service, production, State.SUCCEEDED, started=T0, finished=T0)
    services.incident_declare(
        title="Errors",
        severity="SEV1",
        services=[world.service],
        created_by=world.owner,
        started_at=T0 + timedelta(minutes=3),
        causes=[culprit],
    )
    figures = _report(world, production).figures
    assert (figures.failures, figures.recovered, figures.unrecovered) == (1, 0, 1)
    assert figures.recovery_median is None
    assert T0.tzinfo is UTC
