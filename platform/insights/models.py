"""What Insights records beside the deployments app's tables: the change set each release brings to production."""

from django.db import models

from deployments.models import Release


class ChangeSet(models.Model):
    """The commits a release brings to production: in it, and not in the release production last ran successfully
    when it was recorded. Its first (oldest) commit starts the change lead time of the release's deployments."""

    class Source(models.TextChoices):
        GIT = "git", "Runway's git repository"
        FORGE = "forge", "The forge's API"
        REPORTED = "reported", "Reported with the deploy event"
        NONE = "none", "Nowhere"

    class Status(models.TextChoices):
        RECORDED = "recorded", "Recorded"
        PENDING = "pending", "Waiting for the forge"
        UNAVAILABLE = "unavailable", "Not available"

    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="change_set")
    # The release production ran when this one was recorded; null for a service's first production release.
    base_release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=12, choices=Status.choices)
    note = models.CharField(max_length=300, blank=True, help_text="Why it is not recorded, or what is missing.")
    commit_count = models.PositiveIntegerField(default=0, help_text="Every commit, those not listed too.")
    complete = models.BooleanField(default=True, help_text="False when only the oldest commits were listed.")
    first_commit_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"change set of {self.release} ({self.commit_count} commits)"


class ChangeCommit(models.Model):
    """One commit of a change set, with the time it was committed."""

    change_set = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="commits")
    sha = models.CharField(max_length=40)
    committed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["change_set", "sha"], name="change_commit_unique")]
        ordering = ["committed_at", "sha"]

    def __str__(self) -> str:
        return self.sha[:10]


class DailyRollup(models.Model):
    """One service's DORA counts in one environment on one day (a calendar day in RollupState.zone), with the raw
    recovery and lead times the day's percentiles need. Workers rewrite a service's rows when its history changes;
    insights.rollups keeps them equal to a direct computation from the deployments."""

    day = models.DateField()
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="+")
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    rework = models.PositiveIntegerField(default=0)
    recovered = models.PositiveIntegerField(default=0)
    leads = models.PositiveIntegerField(default=0)
    # Seconds, one per recovered failure and per measured success: percentiles cannot be summed, so they are kept.
    recovery_seconds = models.JSONField(default=list)
    lead_seconds = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "environment", "day"], name="daily_rollup_unique"),
        ]
        indexes = [models.Index(fields=["environment", "day"], name="daily_rollup_window")]

    def __str__(self) -> str:
        return f"{self.service_id}/{self.environment_id} {self.day}"


class GroupRollup(models.Model):
    """The daily rollups of one team (the services it owns today), one system, or the whole organisation, in one
    environment on one day: the service rows (DailyRollup) summed, with their recovery and lead seconds merged. The
    organisation, team and system pages read these, about one row per day, instead of one row per service and day.
    Rewritten from the service rows in the same transaction as they are (insights.rollups), and for both teams or
    systems when a service moves."""

    class Level(models.TextChoices):
        TEAM = "team", "Team"
        SYSTEM = "system", "System"
        ORG = "org", "Organisation"

    level = models.CharField(max_length=6, choices=Level.choices)
    # The team's or the system's id (no foreign key: one column serves both), 0 for the organisation.
    group_id = models.PositiveIntegerField(default=0)
    day = models.DateField()
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="+")
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    rework = models.PositiveIntegerField(default=0)
    recovered = models.PositiveIntegerField(default=0)
    leads = models.PositiveIntegerField(default=0)
    # Every value of the day's service rows, sorted: a median of medians is not the median, so the values stay.
    recovery_seconds = models.JSONField(default=list)
    lead_seconds = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "group_id", "environment", "day"], name="group_rollup_unique"),
        ]
        # The organisation page reads every team's rows of a window.
        indexes = [models.Index(fields=["level", "environment", "day"], name="group_rollup_window")]

    def __str__(self) -> str:
        return f"{self.level}:{self.group_id}/{self.environment_id} {self.day}"


class RollupState(models.Model):
    """Whether the daily rollups cover all history (pages read them only then), and the time zone of their days."""

    zone = models.CharField(max_length=64)
    built_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"rollups in {self.zone} since {self.built_at:%Y-%m-%d %H:%M}"
