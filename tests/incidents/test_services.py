"""Incident writes: declaring, the status machine and its timestamps, links, and rolling a suspect back."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from deployments.models import Deployment, State
from incidents import selectors, services
from incidents.models import IncidentDeployment, Status
from portal.errors import Conflict
from tests.factories import service_make
from tests.incidents.conftest import T0
from tests.insights.support import deployment_make

pytestmark = pytest.mark.django_db


def test_declaring_opens_it_commanded_by_the_declarer_with_an_audit_event(world, incident) -> None:
    assert incident.status == Status.INVESTIGATING and incident.commander == world.owner
    assert [u.status for u in incident.updates.all()] == [Status.INVESTIGATING]
    assert AuditEvent.objects.filter(action="incident.declared", object_id=str(incident.pk)).count() == 1


def test_an_incident_needs_a_service_and_cannot_start_in_the_future(world) -> None:
    with pytest.raises(ValidationError) as empty:
        services.incident_declare(title="x", severity="SEV3", services=[], created_by=world.owner)
    assert "services" in empty.value.message_dict
    with pytest.raises(ValidationError) as future:
        services.incident_declare(
            title="x",
            severity="SEV3",
            services=[world.service],
            created_by=world.owner,
            started_at=timezone.now() + timedelta(hours=1),
        )
    assert "started_at" in future.value.message_dict


def test_each_status_keeps_its_moment_and_skipped_ones_take_the_same(world, incident) -> None:
    services.incident_update(incident=incident, user=world.owner, status="mitigated", at=T0 + timedelta(minutes=40))
    incident.refresh_from_db()
    assert incident.identified_at == incident.mitigated_at == T0 + timedelta(minutes=40)
    services.incident_update(incident=incident, user=world.owner, status="resolved", at=T0 + timedelta(hours=2))
    incident.refresh_from_db()
    assert incident.resolved_at == T0 + timedelta(hours=2) and incident.mitigated_at == T0 + timedelta(minutes=40)


def test_reopening_a_mitigated_incident_clears_its_mitigation_but_a_resolved_one_is_final(world, incident) -> None:
    services.incident_update(incident=incident, user=world.owner, status="mitigated", at=T0 + timedelta(minutes=5))
    services.incident_update(incident=incident, user=world.owner, status="investigating", message="Back again")
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING and incident.mitigated_at is None
    services.incident_update(incident=incident, user=world.owner, status="resolved")
    with pytest.raises(Conflict):
        services.incident_update(incident=incident, user=world.owner, status="identified")
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


def test_an_update_says_something(world, incident) -> None:
    with pytest.raises(ValidationError):
        services.incident_update(incident=incident, user=world.owner, message="  ")
    assert incident.updates.count() == 1


def test_suspects_are_production_deployments_of_the_service_and_its_dependencies_in_the_hour_before(
    world, production, staging, shipped, incident
) -> None:
    from catalog.models import Dependency

    database = service_make(owner=world.other_team, slug="ledger-db")
    unrelated = service_make(owner=world.other_team, slug="search-api")
    Dependency.objects.create(source=world.service, target=database)
    near = T0 - timedelta(minutes=10)
    dependency = deployment_make(database, production, State.ROLLED_BACK, started=near, finished=near)
    deployment_make(unrelated, production, State.SUCCEEDED, started=near, finished=near)  # not related
    deployment_make(world.service, staging, State.SUCCEEDED, started=near, finished=near)  # not production
    early = T0 - timedelta(minutes=90)
    deployment_make(world.service, production, State.SUCCEEDED, started=early, finished=early)  # too early
    after = T0 + timedelta(minutes=5)
    deployment_make(world.service, production, State.SUCCEEDED, started=after, finished=after)  # after the start
    suspects = selectors.suspect_deployments(incident=incident)
    assert [(s.deployment.pk, s.via) for s in suspects] == [
        (dependency.pk, "payments-api"),
        (shipped[1].pk, "affected"),
    ]
    assert suspects[1].minutes_before == 30


def test_rolling_back_a_suspect_redeploys_the_release_it_replaced_and_links_cause_and_fix(
    world, shipped, incident
) -> None:
    good, bad = shipped
    redeploy = services.incident_rollback(incident=incident, deployment=bad, user=world.owner)
    assert redeploy.release_id == good.release_id and redeploy.rollback_of_id == good.pk
    assert redeploy.state == State.PENDING
    links = dict(IncidentDeployment.objects.filter(incident=incident).values_list("deployment_id", "relation"))
    assert links == {bad.pk: "cause", redeploy.pk: "fix"}


def test_only_the_owners_may_roll_back_through_the_deployments_permission(world, shipped, incident) -> None:
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.incident_rollback(incident=incident, deployment=shipped[1], user=world.outsider)
    assert Deployment.objects.count() == 2 and not IncidentDeployment.objects.exists()


def test_a_cancelled_deployment_cannot_be_linked(world, production, incident) -> None:
    cancelled = deployment_make(world.service, production, State.CANCELLED, started=T0, finished=T0)
    with pytest.raises(ValidationError):
        services.incident_link(incident=incident, deployment=cancelled, relation="cause", user=world.owner)
