"""Writes for incidents: declare, update the status and the timeline, edit, link deployments, roll a suspect back.

Who may act is checked at the edge (`incidents.permissions`, the same for pages and API); these functions keep the
incident's own rules: statuses move forward (a mitigated incident may reopen; a resolved one is final), each status
keeps the moment it was reached, and every change writes its audit event in the same transaction.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from catalog.models import Service
from deployments import services as deployment_services
from deployments.models import ACTIVE_STATES, Deployment, State
from incidents import postmortems
from incidents.models import STATUS_ORDER, Incident, IncidentDeployment, IncidentUpdate, Status
from portal.errors import Conflict

EDITABLE = ["title", "severity", "summary", "started_at", "commander"]
# A clock a little ahead of the portal's is not a reason to refuse a declaration.
FUTURE_TOLERANCE = timedelta(minutes=5)


def _name(user: User | None) -> str:
    return user.get_username() if user is not None else "Runway"


def _first_service_id(incident: Incident) -> int | None:
    ids = sorted(service.pk for service in incident.services.all())
    return ids[0] if ids else None


def _started_check(started_at: datetime, now: datetime) -> None:
    if started_at > now + FUTURE_TOLERANCE:
        raise ValidationError({"started_at": ["An incident cannot start in the future; give when users were hurt."]})


@transaction.atomic
def incident_declare(
    *,
    title: str,
    severity: str,
    services: Iterable[Service],
    created_by: User | None,
    commander: User | None = None,
    started_at: datetime | None = None,
    summary: str = "",
    source: str = Incident.Source.MANUAL,
    causes: Iterable[Deployment] = (),
    alert_group: str = "",
    note: str = "",
) -> Incident:
    """Open an incident on one or more services; the declarer commands it unless someone else is named."""
    now = timezone.now()
    services = list(services)
    if not services:
        raise ValidationError({"services": ["Name at least one affected service."]})
    incident = Incident(
        title=title,
        severity=severity,
        summary=summary,
        commander=commander if commander is not None else created_by,
        source=source,
        started_at=started_at or now,
        created_by=created_by,
        alert_group=alert_group,
    )
    _started_check(incident.started_at, now)
    # The database referees the one-open-incident-per-alert-group constraint (Alertmanager's path holds a lock).
    incident.full_clean(validate_constraints=False)
    incident.save()
    Incident.services.through.objects.bulk_create(
        [Incident.services.through(incident_id=incident.pk, service_id=service.pk) for service in services]
    )
    IncidentUpdate.objects.create(
        incident=incident,
        author=created_by,
        author_repr=_name(created_by),
        status=Status.INVESTIGATING,
        message=f"Declared {severity} on {', '.join(sorted(s.slug for s in services))}"
        + (f", commanded by {incident.commander.get_username()}." if incident.commander else ".")
        + (f" {note}" if note else ""),
        created_at=now,
    )
    for deployment in causes:
        _link(incident, deployment, IncidentDeployment.Relation.CAUSE, created_by)
    audit.event_record(
        actor=created_by,
        action="incident.declared",
        target=incident,
        after={"severity": severity, "services": sorted(s.slug for s in services), "source": source},
        service_id=min(s.pk for s in services),
        actor_repr="" if created_by else source,
    )
    return incident


def _status_apply(incident: Incident, status: str, at: datetime) -> None:
    """Move to `status` at `at`: the statuses passed on the way keep this moment too, so the four timestamps never
    go backwards; reopening a mitigated incident clears its mitigation (users are hurt again)."""
    if incident.status == Status.RESOLVED and status != Status.RESOLVED:
        raise Conflict(f"{incident} is resolved; declare a new incident instead of reopening it.")
    target = STATUS_ORDER.index(Status(status))
    if target < STATUS_ORDER.index(Status.MITIGATED):
        incident.mitigated_at = None
    if target >= STATUS_ORDER.index(Status.IDENTIFIED) and incident.identified_at is None:
        incident.identified_at = at
    if target >= STATUS_ORDER.index(Status.MITIGATED) and incident.mitigated_at is None:
        incident.mitigated_at = at
    if target >= STATUS_ORDER.index(Status.RESOLVED) and incident.resolved_at is None:
        incident.resolved_at = at
    incident.status = status


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update().get(pk=incident.pk)


@transaction.atomic
def incident_update(
    *,
    incident: Incident,
    user: User | None,
    message: str = "",
    status: str = "",
    at: datetime | None = None,
    service_id: int | None = None,
) -> IncidentUpdate:
    """Add a note to the timeline and, when `status` differs from the current one, move the incident to it."""
    locked = _locked(incident)
    at = at or timezone.now()
    message = message.strip()
    if status and status not in Status.values:
        raise ValidationError({"status": [f"Choose one of: {', '.join(Status.values)}."]})
    changes = bool(status) and status != locked.status
    if not message and not changes:
        raise ValidationError({"message": ["Write what changed, or choose a new status."]})
    before = locked.status
    if changes:
        _status_apply(locked, status, at)
        locked.save()
    update = IncidentUpdate(
        incident=locked,
        author=user,
        author_repr=_name(user),
        status=status if changes else "",
        message=message or f"Status: {locked.get_status_display()}.",
        created_at=at,
    )
    update.full_clean(exclude=["incident", "author"])  # both are in hand: no query to check they exist
    update.save()
    audit.event_record(
        actor=user,
        action="incident.status_changed" if changes else "incident.noted",
        target=locked,
        before={"status": before} if changes else None,
        after={"status": locked.status} if changes else {"message": update.message[:200]},
        service_id=service_id or _first_service_id(locked),
        actor_repr="" if user else (locked.source if locked.source != Incident.Source.MANUAL else "runway"),
    )
    for name in ("status", "identified_at", "mitigated_at", "resolved_at", "updated_at"):
        setattr(incident, name, getattr(locked, name))
    if changes and locked.status in (Status.MITIGATED, Status.RESOLVED) and postmortems.postmortem_required(locked):
        postmortems.postmortem_start(incident=locked, user=user)  # a draft waits for its authors
    return update


@transaction.atomic
def incident_edit(
    *, incident: Incident, user: User, services: Iterable[Service] | None = None, **fields: Any
) -> Incident:
    """Change the title, severity, summary, start or commander, or the affected services."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed here."] for name in sorted(unknown)})
    locked = _locked(incident)
    before = {name: str(getattr(locked, name)) for name in fields}
    for name, value in fields.items():
        setattr(locked, name, value)
    if "started_at" in fields:
        _started_check(locked.started_at, timezone.now())
        later = [moment for moment in (locked.identified_at, locked.mitigated_at) if moment]
        if later and locked.started_at > min(later):
            raise ValidationError(
                {"started_at": ["The start must come before the incident was identified or mitigated."]}
            )
    locked.full_clean()
    locked.save()
    after = {name: str(getattr(locked, name)) for name in fields}
    if services is not None:
        services = list(services)
        if not services:
            raise ValidationError({"services": ["Name at least one affected service."]})
        before["services"] = ",".join(sorted(s.slug for s in locked.services.all()))
        locked.services.set(services)
        after["services"] = ",".join(sorted(s.slug for s in services))
    audit.event_record(
        actor=user,
        action="incident.edited",
        target=locked,
        before=before,
        after=after,
        service_id=_first_service_id(locked),
    )
    return locked


def _link(incident: Incident, deployment: Deployment, relation: str, user: User | None) -> IncidentDeployment:
    link, created = IncidentDeployment.objects.get_or_create(
        incident=incident, deployment=deployment, defaults={"relation": relation, "linked_by": user}
    )
    if not created and link.relation != relation:
        link.relation = relation
        link.linked_by = user
        link.save(update_fields=["relation", "linked_by"])
    return link


@transaction.atomic
def incident_link(
    *, incident: Incident, deployment: Deployment, relation: str, user: User | None
) -> IncidentDeployment:
    """Record that a deployment caused the incident (a failed change) or fixed it (rework); linking again replaces the
    relation."""
    if relation not in IncidentDeployment.Relation.values:
        raise ValidationError({"relation": [f"Choose one of: {', '.join(IncidentDeployment.Relation.values)}."]})
    never_shipped = deployment.state == State.CANCELLED or (
        relation == IncidentDeployment.Relation.CAUSE and deployment.state in (State.PENDING, State.POLICY_CHECK)
    )
    if never_shipped:
        raise ValidationError(
            {"deployment": [f"Deployment #{deployment.pk} never reached users; it cannot be linked."]}
        )
    link = _link(incident, deployment, relation, user)
    IncidentUpdate.objects.create(
        incident=incident,
        author=user,
        author_repr=_name(user),
        message=f"Deployment #{deployment.pk} ({deployment.release.version} of {deployment.service.slug} to "
        f"{deployment.environment}) marked: {link.get_relation_display().lower()}.",
        created_at=timezone.now(),
    )
    audit.event_record(
        actor=user,
        action="incident.deployment_linked",
        target=incident,
        after={"deployment": deployment.pk, "relation": relation},
        service_id=deployment.service_id,
    )
    return link


@transaction.atomic
def incident_unlink(*, incident: Incident, deployment: Deployment, user: User) -> None:
    deleted, _ = IncidentDeployment.objects.filter(incident=incident, deployment=deployment).delete()
    if not deleted:
        raise Conflict(f"Deployment #{deployment.pk} is not linked to {incident}.")
    IncidentUpdate.objects.create(
        incident=incident,
        author=user,
        author_repr=_name(user),
        message=f"Deployment #{deployment.pk} is no longer linked.",
        created_at=timezone.now(),
    )
    audit.event_record(
        actor=user,
        action="incident.deployment_unlinked",
        target=incident,
        before={"deployment": deployment.pk},
        service_id=deployment.service_id,
    )


def rollback_plan(deployment: Deployment) -> str:
    """What rolling this deployment back does, in words (the confirmation asks exactly this), or "" if it cannot."""
    if deployment.state in ACTIVE_STATES and deployment.state not in (State.FAILED, State.ROLLING_BACK):
        return f"Abort deployment #{deployment.pk} of {deployment.release.version} and roll it back"
    if deployment.state in (State.SUCCEEDED, State.EXTERNAL) and _previous_good(deployment) is not None:
        previous = _previous_good(deployment)
        assert previous is not None
        return (
            f"Redeploy {previous.release.version} to {deployment.environment} in place of "
            f"{deployment.release.version} (deployment #{deployment.pk})"
        )
    return ""


def _previous_good(deployment: Deployment) -> Deployment | None:
    """The last successful deployment of the release this one replaced: the one to redeploy to roll back."""
    if deployment.previous_release_id is None:
        return None
    return (
        Deployment.objects.filter(
            service_id=deployment.service_id,
            environment_id=deployment.environment_id,
            release_id=deployment.previous_release_id,
            state=State.SUCCEEDED,
        )
        .select_related("service", "environment", "release")
        .order_by("-finished_at", "-pk")
        .first()
    )


def incident_rollback(*, incident: Incident, deployment: Deployment, user: User) -> Deployment:
    """Roll a suspect back through the deployments' own controls (abort an active one, or redeploy the release it
    replaced), then link the suspect as the cause and a redeploy as the fix. The deploy permission on the suspect's
    service is checked by the deployments services."""
    if deployment.state in ACTIVE_STATES and deployment.state not in (State.FAILED, State.ROLLING_BACK):
        result = deployment_services.deployment_abort(deployment=deployment, user=user)
        with transaction.atomic():
            incident_link(
                incident=incident, deployment=deployment, relation=IncidentDeployment.Relation.CAUSE, user=user
            )
        return result
    previous = _previous_good(deployment)
    if deployment.state not in (State.SUCCEEDED, State.EXTERNAL) or previous is None:
        raise Conflict(
            f"Deployment #{deployment.pk} is {deployment.get_state_display().lower()} and no earlier successful "
            "release of it is known here; roll back from the deployment's page."
        )
    with transaction.atomic():
        redeploy = deployment_services.deployment_redeploy(deployment=previous, user=user)
        incident_link(incident=incident, deployment=deployment, relation=IncidentDeployment.Relation.CAUSE, user=user)
        incident_link(incident=incident, deployment=redeploy, relation=IncidentDeployment.Relation.FIX, user=user)
    return redeploy
