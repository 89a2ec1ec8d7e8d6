"""Reads for incidents: the list, one incident with its timeline and links, and its suspect deployments."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce

from catalog.models import Dependency, Service
from deployments.models import Deployment, State
from incidents.models import OPEN_STATUSES, Incident, IncidentDeployment, IncidentUpdate


def incident_list_visible(*, user: object) -> QuerySet[Incident]:
    """Every incident: anyone signed in reads them (the one entry point, should some become confidential)."""
    return Incident.objects.select_related("commander").prefetch_related("services__owner")


def incident_get(*, pk: int) -> Incident:
    return Incident.objects.select_related("commander", "created_by").prefetch_related("services__owner").get(pk=pk)


def incident_updates(*, incident: Incident) -> list[IncidentUpdate]:
    return list(incident.updates.select_related("author").order_by("created_at", "pk"))


def incident_links(*, incident: Incident) -> list[IncidentDeployment]:
    return list(
        incident.deployment_links.select_related(
            "deployment__service", "deployment__release", "deployment__environment", "linked_by"
        ).order_by("relation", "created_at")
    )


def open_incidents_for_service(*, service: Service) -> QuerySet[Incident]:
    return Incident.objects.filter(services=service, status__in=OPEN_STATUSES).order_by("severity", "-started_at")


@dataclass
class Suspect:
    """A production deployment shortly before an incident began, of an affected service or one it depends on."""

    deployment: Deployment
    via: str  # "affected" or the affected service's slug that depends on it
    linked: str  # the relation already recorded ("cause", "fix") or ""
    incident_start: datetime

    @property
    def minutes_before(self) -> int:
        moment = self.deployment.started_at or self.deployment.created_at
        return max(0, int((self.incident_start - moment).total_seconds() // 60))


def suspect_deployments(*, incident: Incident) -> list[Suspect]:
    """Production (protected) deployments of the affected services or their dependencies (catalog relations) that
    began, or ended, within `INCIDENTS_SUSPECT_WINDOW_MINUTES` (60) before the incident started; newest first.

    Two queries whatever the history: the dependencies, then the deployments (read by the insights index on
    environment and moment)."""
    affected = {service.pk: service.slug for service in incident.services.all()}
    via: dict[int, str] = dict.fromkeys(affected, "affected")
    for source_id, target_id in Dependency.objects.filter(source_id__in=affected).values_list("source_id", "target_id"):
        via.setdefault(target_id, affected[source_id])
    start = incident.started_at
    since = start - timedelta(minutes=settings.INCIDENTS["SUSPECT_WINDOW_MINUTES"])
    began = Coalesce("started_at", "created_at")
    deployments = (
        Deployment.objects.filter(service_id__in=via, environment__protected=True)
        .exclude(state__in=[State.PENDING, State.POLICY_CHECK, State.CANCELLED])
        .annotate(began=began)
        .filter(Q(began__gte=since, began__lte=start) | Q(finished_at__gte=since, finished_at__lte=start))
        .select_related("service__owner", "release", "previous_release", "environment")
        .order_by("-began", "-pk")[:50]
    )
    links = {
        link.deployment_id: link.relation
        for link in IncidentDeployment.objects.filter(incident=incident).only("deployment_id", "relation")
    }
    return [
        Suspect(deployment=d, via=via[d.service_id], linked=links.get(d.pk, ""), incident_start=start)
        for d in deployments
    ]
