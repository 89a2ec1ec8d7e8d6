"""Deployment targets, releases, deployments with their timelines, what runs where, and decommissioning.

PostgreSQL holds the truth about every deployment: the broker only rings the doorbell. `deployments.machine`
owns every state change; nothing else writes `Deployment.state`.
"""

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.urls import reverse

from catalog.models import Service, slug_validator

commit_validator = RegexValidator(r"\A[0-9a-f]{40}\Z", "A commit is 40 lowercase hexadecimal digits.")
version_validator = RegexValidator(
    r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,79}\Z",
    "A version is letters, digits, dots, dashes, pluses and underscores, starting with a letter or digit.",
)


class Environment(models.Model):
    """A place services run, in promotion order; protected ones are production-like and gated more strictly."""

    name = models.CharField(max_length=50, unique=True)
    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
    order = models.PositiveSmallIntegerField(default=0, help_text="Promotion order: lower comes first.")
    protected = models.BooleanField(default=False, help_text="Production-like: changes need more care.")
    description = models.TextField(blank=True, max_length=2000)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class Strategy(models.TextChoices):
    ROLLING = "rolling", "Rolling"
    BLUE_GREEN = "blue_green", "Blue-green"
    CANARY = "canary", "Canary"


class RuntimeKind(models.TextChoices):
    LOCAL = "local", "Local processes"
    WEBHOOK = "webhook", "External CD (signed webhook)"
    SIMULATED = "simulated", "Simulated (does no work)"


def default_canary_steps() -> list[int]:
    return [10, 25, 50]


class DeployTarget(models.Model):
    """Where one service may deploy, and how: its runtime, default strategy, replicas and analysis thresholds."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deploy_targets")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deploy_targets")
    runtime = models.CharField(max_length=20, choices=RuntimeKind.choices, default=RuntimeKind.LOCAL)
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.ROLLING)
    replicas = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1), MaxValueValidator(10)])
    canary_steps = models.JSONField(default=default_canary_steps, blank=True, help_text="Traffic shares in percent.")
    bake_seconds = models.PositiveIntegerField(default=10, validators=[MaxValueValidator(3600)])
    # The analysis defaults (deployments.analysis.Thresholds): a 99 % success rate, as in Flagger's examples.
    max_error_rate = models.FloatField(default=0.01, validators=[MinValueValidator(0), MaxValueValidator(1)])
    max_p95_ms = models.PositiveIntegerField(default=500)
    min_probe_success = models.FloatField(default=0.95, validators=[MinValueValidator(0), MaxValueValidator(1)])
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "environment"], name="deploy_target_unique")]
        ordering = ["environment__order"]

    def __str__(self) -> str:
        return f"{self.service} → {self.environment}"


class Release(models.Model):
    """A version of a service pinned to one git commit; deployments ship releases."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=80, validators=[version_validator])
    commit_sha = models.CharField(max_length=40, validators=[commit_validator])
    committed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "version"], name="release_version_unique")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.service.slug}@{self.version}"

    @property
    def short_sha(self) -> str:
        return self.commit_sha[:10]


class State(models.TextChoices):
    PENDING = "pending", "Pending"
    POLICY_CHECK = "policy_check", "Policy check"
    # Parked by a require_approval policy (or a break-glass request) until enough eligible people approve it.
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    ROLLING_OUT = "rolling_out", "Rolling out"
    ANALYSING = "analysing", "Analysing"
    PROMOTING = "promoting", "Promoting"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLING_BACK = "rolling_back", "Rolling back"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ROLLBACK_FAILED = "rollback_failed", "Rollback failed"
    CANCELLED = "cancelled", "Cancelled"
    # Reported by an external CD system through the deploy events API; never driven by Runway's workers.
    EXTERNAL = "external", "Reported externally"


TERMINAL_STATES = frozenset(
    {State.SUCCEEDED, State.ROLLED_BACK, State.ROLLBACK_FAILED, State.CANCELLED, State.EXTERNAL}
)
ACTIVE_STATES = frozenset(set(State) - TERMINAL_STATES)
# Active, but no worker step runs: people move the deployment on (governance.approvals), or its request expires.
WAITING_STATES = frozenset({State.AWAITING_APPROVAL})


class Deployment(models.Model):
    """One release shipped to one environment with one strategy, driven step by step by workers."""

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    # Denormalised from the release so the database can enforce one active deployment per service and environment.
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    strategy = models.CharField(max_length=20, choices=Strategy.choices)
    runtime = models.CharField(max_length=20, choices=RuntimeKind.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    # The plan is fixed when the deployment is made, so editing the target never changes one in flight.
    plan = models.JSONField(default=list)
    config = models.JSONField(default=dict, help_text="The target's settings at request time.")
    current_step = models.PositiveSmallIntegerField(default=0)
    traffic_share = models.PositiveSmallIntegerField(default=0, help_text="Percent of traffic on the new release.")
    previous_release = models.ForeignKey(
        Release, null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by_deployments"
    )
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Concurrency control: every write by a worker checks and bumps the version.
    version = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Tries of the current step.")
    rollback_attempts = models.PositiveSmallIntegerField(default=0)
    metric_errors = models.PositiveSmallIntegerField(default=0, help_text="Consecutive failed metric reads.")
    next_run_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    rung_at = models.DateTimeField(null=True, blank=True, help_text="When the sweeper last re-sent its step.")
    deadline = models.DateTimeField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    needs_attention = models.BooleanField(default=False)
    failure_reason = models.TextField(blank=True)
    # An emergency deploy: the owner's reason. Non-empty means break-glass (a platform admin approves it first, and
    # policies see `change.break_glass`).
    break_glass_reason = models.TextField(blank=True, max_length=2000)
    runtime_state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"],
                condition=~Q(state__in=sorted(TERMINAL_STATES)),
                name="deployment_one_active_per_service_environment",
            )
        ]
        indexes = [
            models.Index(fields=["state", "next_run_at"], name="deployment_sweep"),
            models.Index(fields=["service", "-created_at"], name="deployment_service_recent"),
            # Insights reads a window of deployments per environment by the moment they ended (or began), and looks
            # up each failure's recovery: the next success of the same service in the same environment.
            models.Index(
                "environment", Coalesce("finished_at", "started_at", "created_at"), name="deployment_env_moment"
            ),
            models.Index(fields=["service", "environment", "finished_at"], name="deployment_recovery"),
        ]

    def __str__(self) -> str:
        return f"{self.release} → {self.environment.slug} #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("deployments:detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def break_glass(self) -> bool:
        return bool(self.break_glass_reason)

    @property
    def duration_text(self) -> str:
        if not (self.started_at and self.finished_at):
            return ""
        seconds = (self.finished_at - self.started_at).total_seconds()
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    @property
    def progress(self) -> int:
        """Percent of the plan done, for progress bars."""
        if self.state in TERMINAL_STATES:
            return 100
        total = len(self.plan) + 1
        return min(99, int(100 * self.current_step / total))


class DeploymentEvent(models.Model):
    """One line of a deployment's timeline. Append-only."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    step = models.CharField(max_length=40)
    from_state = models.CharField(max_length=20, blank=True, help_text="Set on state changes: the state left.")
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    message = models.TextField(max_length=2000)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["deployment", "at"], name="deployment_event_timeline")]

    def __str__(self) -> str:
        return f"#{self.deployment_id} {self.step}: {self.message[:60]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Deployment events are append-only.")
        super().save(*args, **kwargs)

    @property
    def step_display(self) -> str:
        return State(self.step).label if self.step in State.values else self.step


class Placement(models.Model):
    """Which release runs in which environment: always known, kept by successful deployments and reported events."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="placements")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="placements")
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.PROTECT, related_name="placements")
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    since = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service", "environment"], name="placement_unique")]

    def __str__(self) -> str:
        return f"{self.service.slug} in {self.environment.slug}: {self.release}"


class WebhookCallback(models.Model):
    """An external CD system's signed report on one step it was asked to do; the webhook runtime waits for these.

    Rows are kept (not overwritten) so a deployment's exchange with its CD system can be read afterwards, and the
    unique nonce makes a replayed report a database error rather than a second answer.
    """

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        RUNNING = "running", "Running"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="callbacks")
    step = models.CharField(max_length=60)
    status = models.CharField(max_length=20, choices=Status.choices)
    message = models.TextField(blank=True, max_length=2000)
    payload = models.JSONField(default=dict, blank=True)
    nonce = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [models.Index(fields=["deployment", "step"], name="webhook_callback_step")]

    def __str__(self) -> str:
        return f"#{self.deployment_id} {self.step}: {self.status}"


class DecommissionState(models.TextChoices):
    REQUESTED = "requested", "Awaiting approval"
    APPROVED = "approved", "Approved"
    STOPPING = "stopping", "Stopping environments"
    ARCHIVING = "archiving", "Archiving the repository"
    REVOKING = "revoking", "Revoking permissions"
    DONE = "done", "Decommissioned"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


DECOMMISSION_CLOSED = frozenset({DecommissionState.DONE, DecommissionState.CANCELLED})
# The workflow's steps in order; each is a state a worker runs, then leaves for the next.
DECOMMISSION_STEPS = (
    DecommissionState.APPROVED,
    DecommissionState.STOPPING,
    DecommissionState.ARCHIVING,
    DecommissionState.REVOKING,
)


class Decommission(models.Model):
    """Retiring one service: requested by an owner, approved by a lead, then run step by step by workers.

    The service row stays, read-only, with its whole history; only its runtime, repository and permissions go.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="decommissions")
    reason = models.TextField(max_length=2000)
    planned_for = models.DateField(help_text="The day the service stops; approval before it schedules the work.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="decommissions_requested"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=DecommissionState.choices, default=DecommissionState.REQUESTED)
    failed_step = models.CharField(max_length=20, blank=True, help_text="The step to resume after a failure.")
    failure_reason = models.TextField(blank=True)
    previous_lifecycle = models.CharField(max_length=20, blank=True)
    progress = models.JSONField(default=dict, blank=True, help_text="What each step has done, so a retry skips it.")
    version = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"],
                condition=~Q(state__in=sorted(DECOMMISSION_CLOSED)),
                name="decommission_one_open_per_service",
            )
        ]

    def __str__(self) -> str:
        return f"Decommission of {self.service.slug} #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("deployments:decommission", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.state not in DECOMMISSION_CLOSED

    @property
    def is_running(self) -> bool:
        return self.state in DECOMMISSION_STEPS and self.approved_at is not None

    @property
    def started(self) -> bool:
        """Whether a destructive step has begun; before that the request can simply be cancelled."""
        step = self.failed_step if self.state == DecommissionState.FAILED else self.state
        return step in (DecommissionState.STOPPING, DecommissionState.ARCHIVING, DecommissionState.REVOKING)

    @property
    def step_index(self) -> int:
        """How many of the four steps are done, for the progress list."""
        if self.state == DecommissionState.DONE:
            return len(DECOMMISSION_STEPS)
        step = self.failed_step if self.state == DecommissionState.FAILED else self.state
        return DECOMMISSION_STEPS.index(step) if step in DECOMMISSION_STEPS else 0


class DecommissionEvent(models.Model):
    """Append-only timeline of a decommission: requests, checks, approvals, each step and each failure."""

    decommission = models.ForeignKey(Decommission, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    step = models.CharField(max_length=20)
    from_state = models.CharField(max_length=20, blank=True)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.decommission_id} {self.step}: {self.message[:60]}"

    @property
    def step_display(self) -> str:
        return DecommissionState(self.step).label if self.step in DecommissionState.values else self.step
