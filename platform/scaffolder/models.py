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
    owner = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="+")
    system = models.ForeignKey(System, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    steps = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
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
