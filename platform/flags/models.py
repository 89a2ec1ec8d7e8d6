"""Feature flags: owned by a service (and so by its team), set per environment, served over OFREP (flags/ofrep.py).

A flag's shape (type, variants) is shared by every environment; what each environment serves (on or off, default
variant, targeting rules, a fractional rollout) lives in `FlagSetting`. Every change bumps the flag's `version` and
keeps a `FlagVersion` snapshot, so a person can see who changed what and the SDKs' bulk ETag changes with it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

KEY_PATTERN = r"\A[a-z0-9](?:[a-z0-9._-]{0,98}[a-z0-9])?\Z"
key_validator = RegexValidator(
    KEY_PATTERN,
    "Use lowercase letters, digits, dots, dashes and underscores (1-100), starting and ending alphanumeric.",
)


class FlagType(models.TextChoices):
    BOOLEAN = "boolean", "Boolean"
    STRING = "string", "String"
    INTEGER = "integer", "Integer"
    FLOAT = "float", "Float"
    OBJECT = "object", "Object"


class FlagKind(models.TextChoices):
    RELEASE = "release", "Release"
    EXPERIMENT = "experiment", "Experiment"
    OPERATIONAL = "operational", "Operational"
    PERMISSION = "permission", "Permission"


class Flag(models.Model):
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="flags")
    key = models.CharField(max_length=100, validators=[key_validator])
    description = models.TextField(blank=True, max_length=2000)
    type = models.CharField(max_length=10, choices=FlagType.choices, default=FlagType.BOOLEAN)
    # {"on": true, "off": false}: variant name → value of the flag's type.
    variants = models.JSONField(default=dict)
    kind = models.CharField(max_length=12, choices=FlagKind.choices, default=FlagKind.RELEASE)
    temporary = models.BooleanField(default=True, help_text="Release and experiment flags are meant to be removed.")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service_id", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "key"],
                name="flags_key_unique_per_service",
                violation_error_message="This service already has a flag with this key.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.service})"


class FlagSetting(models.Model):
    """What one environment serves for a flag."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="settings")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="flag_settings")
    enabled = models.BooleanField(default=False)
    default_variant = models.CharField(max_length=100)
    # [{"name": "internal staff", "when": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
    #   "variant": "on"} or "rollout": {...}]: the first rule whose conditions all hold decides.
    rules = models.JSONField(default=list, blank=True)
    # {"on": 10, "off": 90}: weights in percent for everyone no rule matched; empty serves the default variant.
    rollout = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When an SDK last asked for this flag here (flags/counts.py writes it in batches); flag debt reads it.
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["flag_id", "environment__order"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                name="flags_one_setting_per_environment",
                violation_error_message="This flag already has a setting in this environment.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.flag.key} in {self.environment}"


class Segment(models.Model):
    """A reusable audience ("internal staff", "EU"): conditions a rule can refer to by slug."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, max_length=2000)
    conditions = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FlagVersion(models.Model):
    """A flag as it was after one change, with who made it: the history people read and the audit links to."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["flag_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["flag", "number"], name="flags_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.flag.key} v{self.number}"


class EvaluationCount(models.Model):
    """How many evaluations of a flag in one environment served one variant on one day (UTC). Written in batches
    by the flush task (flags/counts.py), never one row write per evaluation; variant "" is the SDK's code default
    (the flag was off, or its answer was an error)."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="evaluation_counts")
    environment = models.ForeignKey(
        "deployments.Environment", on_delete=models.CASCADE, related_name="flag_evaluation_counts"
    )
    day = models.DateField()
    variant = models.CharField(max_length=100, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["flag_id", "environment_id", "day", "variant"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment", "day", "variant"], name="flags_one_count_per_day_and_variant"
            )
        ]

    def __str__(self) -> str:
        return f"{self.flag_id} {self.day} {self.variant or 'code default'}: {self.count}"


def sdk_key_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class SdkKey(models.Model):
    """What an OpenFeature SDK presents: one service, one environment. Shown once; only its digest is kept."""

    PREFIX = "rwf_"

    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="sdk_keys")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="sdk_keys")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="The key's first characters, to tell keys apart.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service_id", "environment__order", "-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def generate(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class FlagChange(models.Model):
    """A change to a protected environment's setting that a require_approval policy held (docs/flags.md): applied
    when every requirement has its approvals, never if someone rejects it or it expires. Answers are kept on the row
    (`answers`), written under its lock, as who the approvers were when they answered."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        FAILED = "failed", "Approved, could not apply"

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="changes")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="+")
    # What the requester asked for: any of enabled, default_variant, rules, rollout, as the setting will hold them;
    # or {"rollout_start": {variant, steps, interval_seconds, metrics_url}}, a progressive rollout to start.
    proposed = models.JSONField()
    note = models.CharField(max_length=200, blank=True)
    decision = models.ForeignKey("governance.Decision", on_delete=models.PROTECT, related_name="+")
    # [{policy, version_id, version, approvers, team, count, message}], as governance.approvals.requirements_of
    requirements = models.JSONField(default=list)
    # [{username, user_id, verdict, reason, owner_roles, platform_admin, counts_for, at}]
    answers = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True, help_text="The policies' messages: why it waits.")
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["flag", "status"], name="flags_change_flag_status")]

    def __str__(self) -> str:
        return f"{self.flag.key} in {self.environment}: {self.get_status_display()}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN and self.expires_at > timezone.now()

    @property
    def shown_status(self) -> str:
        """The status as people should read it: an open change past its time has expired (nothing sweeps it)."""
        if self.status == self.Status.OPEN and not self.is_open:
            return self.Status.EXPIRED.label
        return self.get_status_display()

    def progress(self) -> list[dict[str, Any]]:
        """Each requirement with who approved for it so far: [{..., "by": [usernames], "met": bool, "text"}]."""
        from governance.models import approvers_text  # governance builds on deployments; flags build on both

        approved = [answer for answer in self.answers if answer["verdict"] == "approve"]
        rows = []
        for index, requirement in enumerate(self.requirements):
            by = [answer["username"] for answer in approved if index in answer["counts_for"]]
            met = len(by) >= int(requirement["count"])
            rows.append({**requirement, "by": by, "met": met, "text": approvers_text(requirement)})
        return rows


class FlagRollout(models.Model):
    """A progressive release of one variant of a flag in one environment: a schedule of percentages (1 → 10 → 50 →
    100) stepped by the workers (flags/rollouts.py), with the canary analysis between steps and an automatic roll
    back to the setting as it was before on a failing one. `version` changes at every claim and control, so a stale
    or duplicate task finds another version and does nothing."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        SUCCEEDED = "succeeded", "Succeeded"
        ROLLED_BACK = "rolled_back", "Rolled back"
        ABORTED = "aborted", "Aborted"

    ACTIVE = (State.RUNNING, State.PAUSED)

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="rollouts")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="+")
    variant = models.CharField(max_length=100, help_text="The variant being released.")
    control = models.CharField(max_length=100, help_text="The variant everyone else gets meanwhile.")
    steps = models.JSONField(help_text="Percentages of the variant, rising, ending at 100.")
    step = models.IntegerField(default=-1, help_text="Index of the step serving now; -1 before the first.")
    interval_seconds = models.PositiveIntegerField(default=300, help_text="Time each step bakes before its analysis.")
    metrics_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="The service's Prometheus /metrics in this environment; empty: every replica Runway deployed there.",
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    # The setting before the rollout started, to go back to: {"enabled": bool, "rollout": {...}}.
    before = models.JSONField(default=dict, blank=True)
    # The counters read at the start of the current step: {"per_variant": bool, "variants": {name: [requests, errors]},
    # "total": [requests, errors]}; and at the very start (the "before" of a before/after comparison).
    counters = models.JSONField(default=dict, blank=True)
    started_counters = models.JSONField(default=dict, blank=True)
    evidence = models.JSONField(
        default=dict, blank=True, help_text="deployments.analysis.Evidence of the windows so far."
    )
    inconclusive = models.PositiveSmallIntegerField(default=0)
    version = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField(blank=True, help_text="How it ended, or why it is paused.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=models.Q(state__in=["running", "paused"]),
                name="flags_one_active_rollout",
                violation_error_message="This flag already has a rollout under way in this environment.",
            )
        ]
        indexes = [models.Index(fields=["state", "next_run_at"], name="flags_rollout_due")]

    def __str__(self) -> str:
        return f"rollout of {self.flag.key}={self.variant} in {self.environment}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE

    @property
    def percent(self) -> float:
        return float(self.steps[self.step]) if self.step >= 0 else 0.0


class FlagRolloutEvent(models.Model):
    """One line of a rollout's timeline: a step taken, an analysis, a control used, the end."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    rollout = models.ForeignKey(FlagRollout, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return self.message[:80]
