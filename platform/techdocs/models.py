"""Runbooks (with every version kept) and architecture decision records."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service, System, slug_validator

MAX_DOCUMENT_CHARS = 1_000_000


def review_due(last_reviewed_at: object, interval_days: int) -> object:
    return last_reviewed_at + timedelta(days=interval_days) if last_reviewed_at else None  # type: ignore[operator]


class Runbook(models.Model):
    """Operational knowledge for one service (on-call, deploy, disaster recovery...), reviewed on an interval.

    `review_due_at` is stored (last review + interval) so that "stale" is one indexed comparison in lists.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="runbooks")
    slug = models.SlugField(max_length=100, validators=[slug_validator])
    title = models.CharField(max_length=200)
    body = models.TextField(max_length=MAX_DOCUMENT_CHARS, blank=True)
    review_interval_days = models.PositiveIntegerField(
        default=90, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    last_reviewed_by = models.CharField(max_length=150, blank=True)
    review_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    version = models.PositiveIntegerField(default=1)
    source_path = models.CharField(max_length=1000, blank=True, help_text="File it was imported from, if any.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service__name", "title"]
        constraints = [models.UniqueConstraint(fields=["service", "slug"], name="runbook_unique_slug_per_service")]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: object, **kwargs: object) -> None:
        self.review_due_at = review_due(self.last_reviewed_at, self.review_interval_days)  # type: ignore[assignment]
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def get_absolute_url(self) -> str:
        return reverse("techdocs:runbook-detail", kwargs={"service": self.service.slug, "slug": self.slug})

    @property
    def is_stale(self) -> bool:
        """Never reviewed, or past its review interval."""
        return self.review_due_at is None or self.review_due_at < timezone.now()


class RunbookVersion(models.Model):
    """One saved state of a runbook; every edit adds one, so history and diffs never lose a word."""

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField(max_length=MAX_DOCUMENT_CHARS, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_repr = models.CharField(max_length=150, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["runbook", "number"], name="runbook_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.runbook} v{self.number}"


class ADR(models.Model):
    """An architecture decision record, numbered per service (or per system) as adr-tools does."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        DEPRECATED = "deprecated", "Deprecated"
        SUPERSEDED = "superseded", "Superseded"

    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="adrs")
    system = models.ForeignKey(System, null=True, blank=True, on_delete=models.CASCADE, related_name="adrs")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROPOSED)
    date = models.DateField(default=timezone.localdate)
    deciders = models.CharField(max_length=300, blank=True)
    context = models.TextField(blank=True, max_length=MAX_DOCUMENT_CHARS)
    decision = models.TextField(blank=True, max_length=MAX_DOCUMENT_CHARS)
    consequences = models.TextField(blank=True, max_length=MAX_DOCUMENT_CHARS)
    # Imported files keep their whole Markdown here instead of the three sections.
    body = models.TextField(blank=True, max_length=MAX_DOCUMENT_CHARS)
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="supersedes"
    )
    source_path = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["number"]
        verbose_name = "ADR"
        constraints = [
            models.CheckConstraint(
                condition=(Q(service__isnull=False) & Q(system__isnull=True))
                | (Q(service__isnull=True) & Q(system__isnull=False)),
                name="adr_belongs_to_service_or_system",
            ),
            models.UniqueConstraint(
                fields=["service", "number"], condition=Q(service__isnull=False), name="adr_unique_number_per_service"
            ),
            models.UniqueConstraint(
                fields=["system", "number"], condition=Q(system__isnull=False), name="adr_unique_number_per_system"
            ),
        ]

    def __str__(self) -> str:
        return f"ADR-{self.number:04d} {self.title}"

    def get_absolute_url(self) -> str:
        if self.service is not None:
            return reverse("techdocs:adr-detail", kwargs={"service": self.service.slug, "number": self.number})
        assert self.system is not None
        return reverse("techdocs:system-adr-detail", kwargs={"system": self.system.slug, "number": self.number})

    @property
    def owner_object(self) -> Service | System:
        return self.service or self.system  # type: ignore[return-value]

    def clean(self) -> None:
        if self.superseded_by_id and self.superseded_by_id == self.pk:
            raise ValidationError({"superseded_by": "An ADR cannot supersede itself."})
