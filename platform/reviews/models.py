"""Ownership reviews: campaigns that ask each owning team whether the catalog is still true, the answers, the
verified-ownership record per service, handovers waiting for the receiving team, and the reminders sent."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from teams.models import Team

# The questions a campaign may ask of each service (docs/reviews.md). Ownership is always asked.
QUESTIONS = {
    "ownership": "Is this team still the owner?",
    "details": "Are the on-call link, chat channel, tier and lifecycle right?",
    "runbooks": "Are the runbooks still valid?",
    "retire": "Should this service be retired?",
}
DEFAULT_QUESTIONS = list(QUESTIONS)


class Campaign(models.Model):
    """A review of the services a catalog filter selects, due on a date; each service in scope becomes one item."""

    class Kind(models.TextChoices):
        MANUAL = "manual", "Campaign"
        PERIODIC = "periodic", "Periodic verification"
        EVENT = "event", "Orphaned services"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MANUAL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    # The catalog filter's parameters (catalog.filters.ServiceFilterSet) that chose the services, as submitted.
    scope = models.JSONField(default=dict, blank=True)
    scope_summary = models.CharField(max_length=500, blank=True)
    # A rolling periodic campaign belongs to one team; others to none.
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="review_campaigns")
    message = models.TextField(blank=True, max_length=5000)
    questions = models.JSONField(default=list)
    due_on = models.DateField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One rolling periodic campaign per team, and one rolling campaign of orphaned services, at a time.
            models.UniqueConstraint(
                fields=["team"], condition=Q(kind="periodic", status="open"), name="review_one_open_periodic_per_team"
            ),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(kind="event", status="open"), name="review_one_open_orphan_campaign"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("reviews:campaign-detail", kwargs={"pk": self.pk})

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def asks(self, question: str) -> bool:
        return question in self.questions


class Item(models.Model):
    """One service to review in one campaign, assigned to its owning team's leads and maintainers (or, for an
    orphaned service, to the platform admins)."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for an answer"
        ANSWERED = "answered", "Answered"
        EXPIRED = "expired", "Unanswered when the campaign closed"

    class Audience(models.TextChoices):
        TEAM = "team", "The owning team's leads and maintainers"
        ADMINS = "admins", "Platform admins"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="review_items")
    # The owning team when the item was opened; answers check the service's owner at the time of answering.
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_items")
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.TEAM)
    reason = models.CharField(max_length=300, blank=True)
    # The campaign's due date, or for an item added to a rolling campaign later, its own.
    due_on = models.DateField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    answer = models.JSONField(default=dict, blank=True)
    comment = models.TextField(blank=True, max_length=5000)
    # What the answer did, or could not do, in words: [{"kind": "done" | "pending" | "proposed", "text", "file"?}].
    outcome = models.JSONField(default=list, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service__name", "pk"]
        constraints = [models.UniqueConstraint(fields=["campaign", "service"], name="review_item_once_per_campaign")]
        indexes = [
            models.Index(fields=["campaign", "status"], name="review_item_campaign_status"),
            models.Index(fields=["team", "status"], name="review_item_team_status"),
            models.Index(fields=["service", "status"], name="review_item_service_status"),
            models.Index(fields=["status", "due_on"], name="review_item_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.service} in {self.campaign}"

    def get_absolute_url(self) -> str:
        return reverse("reviews:item-detail", kwargs={"pk": self.pk})

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.due_on < timezone.localdate()


class Ownership(models.Model):
    """What Runway knows about a service's ownership beyond its owner: when and by whom it was last verified, and
    whether it is orphaned (its team cannot answer for it). No row: never verified, not orphaned."""

    service = models.OneToOneField(Service, primary_key=True, on_delete=models.CASCADE, related_name="ownership")
    verified_at = models.DateTimeField(null=True, blank=True, db_index=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_by_repr = models.CharField(max_length=150, blank=True)
    orphaned_since = models.DateTimeField(null=True, blank=True, db_index=True)
    orphan_reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"ownership of {self.service_id}"


class Handover(models.Model):
    """A proposal to move a service to another team, which a lead of the receiving team accepts or declines."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Waiting for the receiving team"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="handovers")
    from_team = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="handovers_out")
    to_team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="handovers_in")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROPOSED)
    note = models.TextField(blank=True, max_length=2000)
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="handovers")
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"], condition=Q(status="proposed"), name="review_one_open_handover_per_service"
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} → {self.to_team}"

    def get_absolute_url(self) -> str:
        return reverse("reviews:handover-detail", kwargs={"pk": self.pk})


class Reminder(models.Model):
    """A reminder about one item on one day; the unique row is how a send is claimed, so that any number of beat
    or worker processes send it once."""

    class Kind(models.TextChoices):
        DUE_SOON = "due_soon", "Due soon"
        OVERDUE = "overdue", "Overdue"
        ESCALATION = "escalation", "Escalated to platform admins"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reminders")
    day = models.DateField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    recipients = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "-pk"]
        constraints = [models.UniqueConstraint(fields=["item", "day"], name="review_reminder_once_per_item_day")]

    def __str__(self) -> str:
        return f"{self.kind} reminder for item {self.item_id} on {self.day}"
