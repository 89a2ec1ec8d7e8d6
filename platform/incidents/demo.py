"""The demo's incidents: one from the canary the demo history rolled back (declared by a person, with its published
postmortem), and one opened and mitigated by Alertmanager's webhook path after a Checkout deployment, so that the
Insights pages show Payments and Checkout failing and recovering differently. Safe to run again: it does nothing once
the demo has incidents.

Everything happens on the demo clock (`deployments.demo.on_clock`), so timelines, audit events and DORA figures
read as the history they belong to."""

import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from catalog.models import Service
from deployments.demo import Clock, on_clock
from deployments.models import Deployment, State
from incidents import alertmanager, postmortems, services
from incidents.models import Incident, IncidentDeployment, Postmortem
from teams.models import Team


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@transaction.atomic
def incidents_load(*, admin: User) -> int:
    """Make the demo's incidents; returns how many were made (0 when they exist already or the history is missing)."""
    if Incident.objects.exists():
        return 0
    made = 0
    canary = (
        Deployment.objects.filter(state=State.ROLLED_BACK, environment__protected=True)
        .select_related("service", "release")
        .order_by("-started_at")
        .first()
    )
    if canary is not None and canary.started_at and canary.finished_at:
        _from_canary(canary, admin)
        made += 1
    checkout = Service.objects.filter(slug="checkout-api").first()
    suspect = (
        Deployment.objects.filter(service=checkout, environment__protected=True, state=State.SUCCEEDED)
        .order_by("-finished_at")
        .first()
        if checkout
        else None
    )
    if suspect is not None and suspect.finished_at:
        _from_alertmanager(suspect, admin)
        made += 1
    return made


def _from_canary(canary: Deployment, admin: User) -> None:
    service = canary.service
    owner = User.objects.filter(memberships__team=service.owner).order_by("username").first() or admin
    assert canary.started_at is not None and canary.finished_at is not None
    start = canary.started_at  # users met the slow release with the canary's first traffic
    clock = Clock(start + timedelta(seconds=20))
    with on_clock(clock):
        incident = services.incident_declare(
            title=f"{service.name} answers slowly after {canary.release.version}",
            severity="SEV2",
            services=[service],
            created_by=owner,
            started_at=start,
            summary="p95 latency of the canary went past 500 ms; checkout payments timed out for some users.",
            causes=[canary],
        )
        clock.advance_to(start + timedelta(seconds=40))
        services.incident_update(
            incident=incident,
            user=owner,
            status="identified",
            message=f"The canary of {canary.release.version} is slow; Runway's analysis failed it and is rolling back.",
        )
        mitigated = max(canary.finished_at, clock.now() + timedelta(seconds=1))
        clock.advance_to(mitigated)
        services.incident_update(
            incident=incident,
            user=owner,
            status="mitigated",
            at=mitigated,
            message="Rolled back: latency is back to normal.",
        )
        clock.advance_to(mitigated + timedelta(hours=1))
        services.incident_update(
            incident=incident, user=owner, status="resolved", message="Watched for an hour: stable."
        )
        postmortem = Postmortem.objects.get(incident=incident)  # made as a draft when it was mitigated (SEV2)
        postmortems.postmortem_save(
            postmortem=postmortem,
            user=owner,
            summary=(
                f"Release {canary.release.version} of {service.slug} added a synchronous ledger call on the payment "
                "path. Its canary answered slowly; Runway's analysis failed it and rolled it back within minutes."
            ),
            impact="About 10 % of payment requests (the canary's share) took over 2 s for 6 minutes; none were lost.",
            contributing_factors=(
                "- The ledger call had no timeout, so a slow ledger made every payment slow.\n"
                "- Load tests ran against a ledger stub that always answers at once.\n"
                "- The canary's first traffic share (10 %) was enough for users to notice."
            ),
            went_well="- The canary analysis caught the latency at the first step and rolled back on its own.",
        )
        postmortems.lesson_add(
            postmortem=postmortem, user=owner, text="Every outbound call needs a timeout and a budget"
        )
        postmortems.lesson_add(postmortem=postmortem, user=owner, text="Load tests use a ledger with real latency")
        today = timezone.localdate()
        platform = Team.objects.filter(slug="platform").first() or service.owner
        postmortems.action_add(
            postmortem=postmortem,
            user=owner,
            title="Add a 300 ms timeout to the ledger client",
            owner_team=service.owner,
            due_date=today - timedelta(days=1),
        )
        postmortems.action_add(
            postmortem=postmortem,
            user=owner,
            title="Give the load-test ledger production-like latency",
            owner_team=platform,
            due_date=today + timedelta(days=14),
        )
        postmortems.postmortem_transition(postmortem=postmortem, user=owner, state="in_review")
        postmortems.postmortem_transition(postmortem=postmortem, user=owner, state="published")


def _from_alertmanager(suspect: Deployment, admin: User) -> None:
    """Alertmanager's own path: a receiver, a firing notification, then a resolved one; a person marks the cause."""
    service = suspect.service
    assert suspect.finished_at is not None
    fired = suspect.finished_at + timedelta(minutes=12)
    ended = fired + timedelta(minutes=38)
    clock = Clock(fired + timedelta(seconds=30))
    labels = {"alertname": "CheckoutErrorBudgetBurn", "service": service.slug, "severity": "critical"}
    annotations = {"summary": "Checkout is burning its error budget 14x too fast"}
    with on_clock(clock):
        receiver, _token = alertmanager.receiver_create(name="demo-alertmanager", created_by=admin)
        firing: dict[str, Any] = {
            "receiver": "runway",
            "status": "firing",
            "version": "4",
            "groupKey": '{}:{alertname="CheckoutErrorBudgetBurn"}',
            "truncatedAlerts": 0,
            "groupLabels": {"alertname": labels["alertname"]},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "http://alertmanager.demo:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": _iso(fired),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.demo:9090/graph",
                    "fingerprint": "6f0c3a52d1e9b7a4",
                }
            ],
        }
        body = json.dumps(firing).encode()
        (result,) = alertmanager.notification_receive(receiver=receiver, body=body, data=firing)
        incident = Incident.objects.get(pk=result["incident"])
        owner = User.objects.filter(memberships__team=service.owner).order_by("username").first() or admin
        clock.advance_to(fired + timedelta(minutes=6))
        services.incident_link(
            incident=incident, deployment=suspect, relation=IncidentDeployment.Relation.CAUSE, user=owner
        )
        clock.advance_to(ended + timedelta(seconds=20))
        resolved = {
            **firing,
            "status": "resolved",
            "alerts": [
                {
                    **firing["alerts"][0],
                    "status": "resolved",
                    "endsAt": _iso(ended),
                }
            ],
        }
        body = json.dumps(resolved).encode()
        alertmanager.notification_receive(receiver=receiver, body=body, data=resolved)
