"""Health checks of services per environment, and what their probes found.

Raw probe results are kept for a week (`MONITORING_RAW_RETENTION_DAYS`); each complete hour is rolled up into a
`ProbeRollup` row first, so uptime over longer windows survives the purge.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


class HealthStatus(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"
    # No results, stale results or a paused check: never shown as healthy.
    UNKNOWN = "unknown", "Unknown"


class ProbeSource(models.TextChoices):
    HTTP = "http", "HTTP probe"
    # For services on the simulated runtime (the demo's): nothing listens, so the worker makes the result up
    # without a request, and every page that shows it says so.
    SIMULATED = "simulated", "Simulated"


class HealthCheck(models.Model):
    """An HTTP probe of one service in one environment, run by workers every `interval_seconds`."""

    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="health_checks")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="health_checks")
    url = models.URLField(max_length=2000, help_text="http or https URL the probe requests with GET.")
    interval_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(10), MaxValueValidator(86_400)], help_text="10 s to 1 day."
    )
    timeout_ms = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(100), MaxValueValidator(30_000)], help_text="100 ms to 30 s."
    )
    expected_status = models.PositiveSmallIntegerField(
        default=200, validators=[MinValueValidator(100), MaxValueValidator(599)]
    )
    body_match = models.CharField(
        max_length=200, blank=True, help_text="Text the response body must contain (searched in its first bytes)."
    )
    enabled = models.BooleanField(default=True)
    source = models.CharField(
        max_length=20,
        choices=ProbeSource.choices,
        default=ProbeSource.HTTP,
        help_text="simulated: no request is made; the result is made up (demo services on the simulated runtime).",
    )
    next_run_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service_id", "environment__order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment"],
                name="monitoring_one_check_per_service_environment",
                violation_error_message="This service already has a health check in this environment.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} in {self.environment}"


class ProbeResult(models.Model):
    """One probe's outcome; written in batches by the runner."""

    health_check = models.ForeignKey(HealthCheck, on_delete=models.CASCADE, related_name="results")
    checked_at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [models.Index(fields=["health_check", "-checked_at"], name="monitoring_result_check_time")]

    def __str__(self) -> str:
        return f"{self.health_check_id} at {self.checked_at:%Y-%m-%d %H:%M:%S}: {'ok' if self.ok else self.error}"


class ProbeRollup(models.Model):
    """Counts of one check's probes in one clock hour, kept after the raw rows are purged."""

    health_check = models.ForeignKey(HealthCheck, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField()
    total = models.PositiveIntegerField()
    ok = models.PositiveIntegerField()
    latency_ms_sum = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["health_check", "hour"], name="monitoring_rollup_check_hour")]

    def __str__(self) -> str:
        return f"{self.health_check_id} {self.hour:%Y-%m-%d %H}:00 {self.ok}/{self.total}"
