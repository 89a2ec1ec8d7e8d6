"""A burning SLO opens an incident: one per burn (not one per evaluation), naming the deployments before it, mitigated
when the burn stops and reopened if it pages again; the organisation's setting and each SLO's annotation decide."""

import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.urls import reverse
from django.utils import timezone

from deployments.models import Deployment, Environment, State
from incidents.models import Incident, IncidentUpdate, Status
from monitoring import openslo, services, tasks
from monitoring.models import SLO, HealthCheck, ProbeResult, SliSample, SliState
from portal.celery import app
from tests.deployments.support import release_make
from tests.monitoring.test_slos import probe_slo


def _burning(world, *, name: str = "probes", annotation: str = "", error: float = 0.05) -> SLO:
    """A probe SLO (99.9 %) whose last two hours had `error` of their events fail: 50× its allowance by default."""
    document = probe_slo(name)
    if annotation:
        document["metadata"]["annotations"] = {"runway.dev/incidents": annotation}
    slo = services.slo_create(user=world.owner, service=world.service, document=document)
    now = timezone.now()
    SLO.objects.filter(pk=slo.pk).update(sli_state=SliState.OK, evaluated_at=now - timedelta(minutes=1))
    SliSample.objects.bulk_create(
        SliSample(slo=slo, at=now - timedelta(minutes=m), good=1000 * (1 - error), total=1000) for m in range(1, 120)
    )
    slo.refresh_from_db()
    return slo


def _calm(slo: SLO) -> None:
    """The burn stops: the last 40 minutes' events all good, so neither short window (5 and 30 minutes) burns."""
    now = timezone.now()
    SliSample.objects.filter(slo=slo, at__gt=now - timedelta(minutes=40)).delete()
    SliSample.objects.create(slo=slo, at=now, good=5000, total=5000)


@pytest.mark.django_db(transaction=True)
def test_a_page_alert_opens_one_incident_naming_the_deployment_before_it_and_mitigates_when_it_stops(world, client):
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    check = HealthCheck.objects.create(service=world.service, environment=production, url="http://a.test/")
    slo = _burning(world)
    ProbeResult.objects.bulk_create(
        ProbeResult(health_check=check, checked_at=timezone.now() - timedelta(seconds=s), ok=False) for s in (5, 25)
    )
    deployment = Deployment.objects.create(
        release=release_make(world.service, "2.0.0"),
        service=world.service,
        environment=production,
        strategy="rolling",
        runtime="simulated",
    )
    Deployment.objects.filter(pk=deployment.pk).update(
        state=State.SUCCEEDED, started_at=timezone.now() - timedelta(minutes=20)
    )

    # Beat's minute task on a real worker: it evaluates the SLO (two failed probes) and opens the incident.
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        tasks.evaluate_slos_task.delay()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not Incident.objects.exists():
            time.sleep(0.1)
    incident = Incident.objects.get()
    assert incident.source == Incident.Source.SLO and incident.severity == "SEV2"
    assert incident.status == Status.INVESTIGATING
    assert list(incident.services.all()) == [world.service]
    assert "SLO Requests that succeed is burning its error budget on payments-api" == incident.title
    assert SliSample.objects.filter(slo=slo, good=0, total=2).exists()  # the worker's own evaluation
    notes = list(IncidentUpdate.objects.filter(incident=incident).values_list("message", flat=True))
    assert any(f"Suspect deployments: #{deployment.pk} of payments-api (Production, " in note for note in notes)

    # Every later evaluation while it burns joins the same incident silently.
    tasks.evaluate_slos_task()
    assert services.slo_incidents_sync() == []
    assert Incident.objects.count() == 1 and IncidentUpdate.objects.filter(incident=incident).count() == len(notes)

    _calm(slo)
    (action,) = services.slo_incidents_sync()
    assert action == {"slo": slo.pk, "incident": incident.pk, "action": "mitigated"}
    incident.refresh_from_db()
    assert incident.status == Status.MITIGATED and incident.mitigated_at is not None
    assert services.slo_incidents_sync() == []  # still calm: nothing more

    SliSample.objects.create(slo=slo, at=timezone.now(), good=0, total=5000)  # it burns again
    (action,) = services.slo_incidents_sync()
    assert action["action"] == "reopened" and action["incident"] == incident.pk
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING and Incident.objects.count() == 1

    client.force_login(world.outsider)
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "Opened by an SLO's page alert" in page and f"#{deployment.pk}" in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "annotation", "opens"),
    [("page", "", True), ("off", "", False), ("off", "page", True), ("page", "off", False)],
)
def test_the_organisation_setting_and_the_slo_annotation_decide(world, settings, setting, annotation, opens):
    settings.MONITORING_SLO_INCIDENTS = setting
    _burning(world, annotation=annotation)
    assert len(services.slo_incidents_sync()) == int(opens)
    assert Incident.objects.count() == int(opens)


@pytest.mark.django_db
def test_a_ticket_or_an_unknown_sli_opens_nothing(world):
    slow = _burning(world, name="slow", error=0.002)  # 2× its allowance: a ticket at most, never a page
    unknown = _burning(world, name="unknown")
    SLO.objects.filter(pk=unknown.pk).update(sli_state=SliState.UNKNOWN, sli_error="Prometheus unreachable")
    assert services.slo_incidents_sync() == []
    assert not Incident.objects.exists()
    # An incident already open is not mitigated by an SLI nobody can read: no data does not say the burn stopped.
    SLO.objects.filter(pk=unknown.pk).update(sli_state=SliState.OK)
    services.slo_incidents_sync()
    SLO.objects.filter(pk=unknown.pk).update(sli_state=SliState.UNKNOWN)
    _calm(unknown)
    assert services.slo_incidents_sync() == []
    assert Incident.objects.get().status == Status.INVESTIGATING
    assert slow.incidents == ""


def test_the_incidents_annotation_is_checked():
    document = probe_slo()
    document["metadata"]["annotations"] = {"runway.dev/incidents": "always"}
    with pytest.raises(openslo.SloError) as refused:
        openslo.slo_parse(document)
    assert refused.value.field == "metadata.annotations.runway.dev/incidents"
    document["metadata"]["annotations"] = {"runway.dev/incidents": "off"}
    assert openslo.slo_parse(document).incidents == "off"
