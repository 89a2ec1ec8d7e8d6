"""Incidents: what went wrong in production, who leads the response, how it unfolded, and which deployments
caused or fixed it. The insights app counts incidents linked to deployments in the change fail rate, the recovery
time and the rework rate (docs/insights.md)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from catalog.models import Service
from deployments.models import Deployment


class Severity(models.TextChoices):
    SEV1 = "SEV1", "SEV1 (critical: many users cannot use a core function)"
    SEV2 = "SEV2", "SEV2 (major: a core function is degraded)"
    SEV3 = "SEV3", "SEV3 (minor: some users, a workaround exists)"
    SEV4 = "SEV4", "SEV4 (low: cosmetic or internal)"


class Status(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"


# The order an incident moves through; each status has its own timestamp on the incident.
STATUS_ORDER = [Status.INVESTIGATING, Status.IDENTIFIED, Status.MITIGATED, Status.RESOLVED]
OPEN_STATUSES = [Status.INVESTIGATING, Status.IDENTIFIED, Status.MITIGATED]


class Incident(models.Model):
    """Something hurting users: declared by a person, or opened by an Alertmanager alert; the commander leads it."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Declared by a person"
        ALERTMANAGER = "alertmanager", "Prometheus Alertmanager"
        SLO = "slo", "An SLO's page alert"

    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=4, choices=Severity.choices, default=Severity.SEV3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INVESTIGATING)
    summary = models.TextField(blank=True, max_length=10000)
    services = models.ManyToManyField(Service, related_name="incidents")
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="commanded_incidents"
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    # When users started to be hurt (may be earlier than the declaration), then when each later status was reached.
    started_at = models.DateTimeField()
    identified_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # For an incident opened by Alertmanager: a digest of the receiver, the alert group's groupKey and the service,
    # so that later notifications of the same group join it (at most one unresolved incident per group and service).
    # For one opened by a burning SLO: a digest of the SLO (monitoring.services.slo_incidents_sync), one per burn.
    alert_group = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["status", "-started_at"], name="incident_status_recent")]
        constraints = [
            models.UniqueConstraint(
                fields=["alert_group"],
                condition=Q(alert_group__gt="") & ~Q(status="resolved"),
                name="incident_one_open_per_alert_group",
            )
        ]

    def __str__(self) -> str:
        return f"INC-{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("incidents:detail", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.status != Status.RESOLVED

    @property
    def severity_rank(self) -> int:
        return int(self.severity[-1])


class IncidentUpdate(models.Model):
    """One entry of an incident's timeline: a note, a status change, or both; never edited afterwards."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_repr = models.CharField(max_length=150)
    status = models.CharField(max_length=20, choices=Status.choices, blank=True, help_text="The status it set.")
    message = models.TextField(max_length=10000)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.incident_id}: {self.message[:60]}"


class IncidentDeployment(models.Model):
    """A deployment linked to an incident: one that caused it (counted as a failed change) or one that fixed it
    (counted as rework)."""

    class Relation(models.TextChoices):
        CAUSE = "cause", "Caused it"
        FIX = "fix", "Fixed it"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="deployment_links")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="incident_links")
    relation = models.CharField(max_length=10, choices=Relation.choices)
    linked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "deployment"], name="incident_deployment_unique"),
        ]
        indexes = [
            # Insights asks, per deployment, whether an incident names it as a cause or a fix.
            models.Index(fields=["deployment", "relation"], name="incident_link_deployment"),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} ← {self.deployment_id} ({self.relation})"


OPEN = Q(status__in=OPEN_STATUSES)


class AlertReceiver(models.Model):
    """An Alertmanager webhook receiver allowed to open incidents, with its bearer token (only a SHA-256 digest is
    kept; the token is shown once). Made and revoked by platform admins."""

    name = models.SlugField(max_length=50, unique=True, help_text="The receiver's name in alertmanager.yml.")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (rwam_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AlertNotification(models.Model):
    """One webhook notification acted on: its body's digest refuses a replay, and the result says what it did."""

    receiver = models.ForeignKey(AlertReceiver, on_delete=models.CASCADE, related_name="notifications")
    digest = models.CharField(max_length=64)
    group_key = models.CharField(max_length=1000)
    status = models.CharField(max_length=10)
    alerts = models.PositiveIntegerField()
    result = models.JSONField(default=list)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["receiver", "digest"], name="alert_notification_once"),
        ]
        indexes = [models.Index(fields=["received_at"], name="alert_notification_age")]

    def __str__(self) -> str:
        return f"{self.receiver_id}: {self.status} {self.alerts} alerts"


class Postmortem(models.Model):
    """The blameless review of one incident: what happened, why (conditions, never people), and what changes.

    Draft → in review → published; a published postmortem is frozen and searchable."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        PUBLISHED = "published", "Published"

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="postmortem")
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    summary = models.TextField(blank=True, max_length=50000)
    impact = models.TextField(blank=True, max_length=50000)
    timeline = models.TextField(blank=True, max_length=50000)
    contributing_factors = models.TextField(blank=True, max_length=50000)
    went_well = models.TextField(blank=True, max_length=50000)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Postmortem of INC-{self.incident_id}: {self.incident.title}"

    def get_absolute_url(self) -> str:
        return reverse("incidents:postmortem", args=[self.incident_id])

    @property
    def title(self) -> str:
        return f"INC-{self.incident_id} {self.incident.title}"


class Lesson(models.Model):
    """One thing learnt; it may become an ADR or a change to a runbook, and then links to it."""

    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="lessons")
    text = models.CharField(max_length=2000)
    adr = models.ForeignKey("techdocs.ADR", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    runbook = models.ForeignKey("techdocs.Runbook", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.text[:80]


class ActionItem(models.Model):
    """Work a postmortem asks of a team, tracked to done; only the owner team's members close it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="actions")
    title = models.CharField(max_length=300)
    owner_team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="postmortem_actions")
    due_date = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [models.Index(fields=["owner_team", "status", "due_date"], name="action_item_team_due")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_overdue(self) -> bool:
        from django.utils import timezone

        return self.status == self.Status.OPEN and self.due_date < timezone.localdate()
