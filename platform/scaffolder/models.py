"""Scaffold runs: one golden path rendered into a new repository and registered in the catalog, step by step."""

import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from catalog.models import Service, System
from teams.models import Team

STEPS = ("validate", "render", "publish", "register", "audit")


class ScaffoldRun(models.Model):
    """A request to create a service from a golden path; its `steps` are the live timeline shown on the page.

    A run that fails leaves nothing half-made: the repository is removed if the catalog entry could not be
    written, and the catalog entry is only written once the repository exists.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    golden_path = models.CharField(max_length=100)
    golden_path_version = models.CharField(max_length=40)
    answers = models.JSONField(default=dict)
    display_name = models.CharField(
        max_length=100, blank=True, help_text="The new service's name as people read it; empty: made from the slug."
    )
    owner = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="+")
    system = models.ForeignKey(System, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    steps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="While running: the worker renews this; once it lapses, the worker is gone."
    )
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    repository_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.golden_path} → {self.answers.get('name', '?')}"

    def get_absolute_url(self) -> str:
        return reverse("scaffolder:run-detail", kwargs={"uuid": self.uuid})

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def progress(self) -> int:
        finished = sum(1 for step in self.steps if step.get("status") == "done")
        return round(100 * finished / len(STEPS))

    @property
    def service_name(self) -> str:
        """The name the new service gets: the display name asked for, else one made from the slug."""
        return self.display_name or display_name_default(str(self.answers.get("name", "")))


# Words a slug spells in lower case that people write otherwise, for the display name made from a slug.
_WORDS = {"api": "API", "apis": "APIs", "ui": "UI", "db": "DB", "http": "HTTP", "sdk": "SDK", "cli": "CLI", "id": "ID"}
_WORDS |= {"ml": "ML", "etl": "ETL", "grpc": "gRPC", "sql": "SQL", "io": "IO", "ci": "CI", "cd": "CD", "s3": "S3"}


def display_name_default(slug: str) -> str:
    """The name people would write for a slug: "ledger-api" → "Ledger API"."""
    words = " ".join(_WORDS.get(word, word) for word in slug.split("-") if word)
    return words[:1].upper() + words[1:]


UPDATE_STEPS = ("check", "clone", "merge", "commit", "publish")


class GoldenPathUpdate(models.Model):
    """A newer version of a service's golden path merged into a branch of its repository, for a person to review.

    Copier renders the version the service was made from and the newer one and merges the difference into the
    service's code on a branch; where the service and the template changed the same lines, the branch carries
    conflict markers and cannot be merged until someone resolves them there.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        READY = "ready", "Ready to merge"
        CONFLICTS = "conflicts", "Has conflicts"
        FAILED = "failed", "Failed"
        MERGED = "merged", "Merged"
        DISCARDED = "discarded", "Discarded"

    OPEN = (Status.QUEUED, Status.RUNNING, Status.READY, Status.CONFLICTS)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="golden_path_updates")
    golden_path = models.CharField(max_length=100)
    from_version = models.CharField(max_length=40)
    to_version = models.CharField(max_length=40)
    to_ref = models.CharField(max_length=60, blank=True, help_text="The golden path store's tag merged in.")
    branch = models.CharField(max_length=200, blank=True)
    base_sha = models.CharField(max_length=40, blank=True, help_text="The commit of main the branch starts from.")
    head_sha = models.CharField(max_length=40, blank=True)
    change_request_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="The pull request (GitHub) or merge request (GitLab) opened for the branch; empty on the local "
        "publisher, where the branch is merged in Runway.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    steps = models.JSONField(default=list, blank=True)
    files = models.JSONField(default=list, blank=True, help_text="[{path, change, conflicted}] against main.")
    diff = models.TextField(blank=True)
    diff_truncated = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="While running: the worker renews this; once it lapses, the worker is gone."
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    merged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"],
                condition=models.Q(status__in=["queued", "running", "ready", "conflicts"]),
                name="one_open_golden_path_update_per_service",
            )
        ]

    def __str__(self) -> str:
        return f"{self.service.slug}: {self.golden_path} {self.from_version} → {self.to_version}"

    def get_absolute_url(self) -> str:
        return reverse("scaffolder:update-detail", kwargs={"uuid": self.uuid})

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def is_working(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def change_request_label(self) -> str:
        """What the forge calls the request opened for the branch; empty when there is none."""
        if not self.change_request_url:
            return ""
        return "merge request" if "/-/merge_requests/" in self.change_request_url else "pull request"

    @property
    def conflicted(self) -> list[str]:
        return [entry["path"] for entry in self.files if entry.get("conflicted")]

    @property
    def progress(self) -> int:
        finished = sum(1 for step in self.steps if step.get("status") == "done")
        return round(100 * finished / len(UPDATE_STEPS))
