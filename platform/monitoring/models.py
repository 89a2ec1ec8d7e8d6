"""Health checks of services per environment, and what their probes found.

Raw probe results are kept for a week (`MONITORING_RAW_RETENTION_DAYS`); each complete hour is rolled up into a
`ProbeRollup` row first, so uptime over longer windows survives the purge.
"""

from urllib.parse import urlsplit, urlunsplit

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
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
    # Every replica the environment's runtime runs for the service, found anew at each probe: the local runtime gives
    # each release new ports, so a URL naming one would go down with the next deployment.
    REPLICAS = "replicas", "Deployed replicas"


class HealthCheck(models.Model):
    """An HTTP probe of one service in one environment, run by workers every `interval_seconds`."""

    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="health_checks")
    environment = models.ForeignKey("deployments.Environment", on_delete=models.CASCADE, related_name="health_checks")
    url = models.URLField(
        max_length=2000,
        blank=True,
        help_text="http or https URL the probe requests with GET; empty when the check probes the deployed replicas.",
    )
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
        help_text=(
            "http: the URL; replicas: every replica Runway deployed there, at its release's health path; simulated:"
            " no request is made, the result is made up (demo services on the simulated runtime)."
        ),
    )
    next_run_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The service's Prometheus page on the check's host and port, scraped every MONITORING_SCRAPE_INTERVAL_SECONDS
    # into MetricSample rows; empty: not scraped.
    metrics_path = models.CharField(
        max_length=200,
        blank=True,
        default="/metrics",
        validators=[RegexValidator(r"^/[^\s?#]*$", "A path starting with / (no query or fragment), or empty.")],
        help_text="Path of the service's Prometheus metrics on the check's host; empty to scrape nothing.",
    )
    # The counters read at the last scrape (monitoring.scrape.Reading.state), so the next one records the increase.
    metrics_state = models.JSONField(default=dict, blank=True)
    metrics_error = models.CharField(max_length=300, blank=True)
    metrics_scraped_at = models.DateTimeField(null=True, blank=True)
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

    @property
    def metrics_url(self) -> str:
        """`metrics_path` on the check's scheme, host and port; empty when nothing is scraped, or when the replicas
        are (each at its release's own metrics path)."""
        if not self.metrics_path or not self.url:
            return ""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, self.metrics_path, "", ""))


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


class MetricSample(models.Model):
    """What one scrape of a service's /metrics found since the previous one: requests, 5xx errors and the latency
    histogram's increase (its percentiles worked out once, for the detector). Kept MONITORING_RAW_RETENTION_DAYS."""

    health_check = models.ForeignKey(HealthCheck, on_delete=models.CASCADE, related_name="metric_samples")
    at = models.DateTimeField()
    seconds = models.FloatField()
    requests = models.FloatField()
    errors = models.FloatField()
    # [[le, count], ...] increases, cumulative over le (monitoring.scrape.Buckets); empty without a histogram.
    buckets = models.JSONField(default=list, blank=True)
    p50_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["health_check", "at"], name="monitoring_metric_check_at")]

    def __str__(self) -> str:
        return f"{self.health_check_id} at {self.at:%Y-%m-%d %H:%M}: {self.requests:g} requests"


class MetricRollup(models.Model):
    """One check's scraped metrics summed over a clock hour (buckets included, so percentiles stay exact)."""

    health_check = models.ForeignKey(HealthCheck, on_delete=models.CASCADE, related_name="metric_rollups")
    hour = models.DateTimeField()
    seconds = models.FloatField()
    requests = models.FloatField()
    errors = models.FloatField()
    buckets = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["health_check", "hour"], name="monitoring_metric_rollup_hour")]

    def __str__(self) -> str:
        return f"{self.health_check_id} {self.hour:%Y-%m-%d %H}:00 {self.requests:g} requests"


class Metric(models.TextChoices):
    """The key metrics read from a service's /metrics, as the pages and the detector name them."""

    REQUEST_RATE = "request_rate", "Request rate"
    ERROR_RATE = "error_rate", "Error rate"
    LATENCY_P95 = "latency_p95", "Latency p95"
    # The joint test over all of them (monitoring.anomaly.ServiceDetector): no single metric left its range.
    CORRELATED = "correlated", "Metrics together"


class SliKind(models.TextChoices):
    RATIO = "ratio", "Ratio (good / total events)"
    THRESHOLD = "threshold", "Threshold (each evaluation is good when the value meets it)"


class SliSource(models.TextChoices):
    PROMETHEUS = "prometheus", "Prometheus (PromQL)"
    PROBE = "probe", "Health check probes"


class SliState(models.TextChoices):
    OK = "ok", "Read"
    # The source could not be read (Prometheus unreachable, a query error, no health check): never healthy.
    UNKNOWN = "unknown", "Unknown"


class SLO(models.Model):
    """A service level objective in the OpenSLO format (`document`), from a catalog file or written in the UI.

    The fields besides `document` are what the worker and the pages need, parsed from it by `monitoring.openslo`;
    an SLO with a `catalog_source` belongs to that file and is changed only by importing it again.
    """

    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="slos")
    name = models.SlugField(max_length=63)
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    sli_kind = models.CharField(max_length=20, choices=SliKind.choices)
    source = models.CharField(max_length=20, choices=SliSource.choices)
    good_query = models.TextField(blank=True)
    total_query = models.TextField(blank=True)
    # OpenSLO's ratioMetric.counter: true when the queries give cumulative counters, false for per-second rates.
    counter = models.BooleanField(default=True)
    threshold_query = models.TextField(blank=True)
    threshold_op = models.CharField(max_length=3, blank=True)
    threshold_value = models.FloatField(null=True, blank=True)
    # For probe SLIs: the environment whose health check counts, by slug, so that an SLO file can be imported
    # before its environment exists (the SLI is unknown until it does).
    environment_slug = models.SlugField(max_length=50, blank=True)
    target = models.FloatField()
    window_days = models.PositiveSmallIntegerField(default=28)
    # Whether a page alert opens an incident: "page", "off", or "" for the organisation's MONITORING_SLO_INCIDENTS
    # (the document's metadata.annotations["runway.dev/incidents"]).
    incidents = models.CharField(max_length=10, blank=True)
    document = models.JSONField()
    catalog_source = models.ForeignKey(
        "catalog.CatalogSource", null=True, blank=True, on_delete=models.SET_NULL, related_name="slos"
    )
    source_path = models.CharField(max_length=1000, blank=True)
    sli_state = models.CharField(max_length=10, choices=SliState.choices, default=SliState.UNKNOWN)
    sli_error = models.CharField(max_length=300, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    # Prometheus counters are cumulative: the last values read, so the next evaluation records the increase.
    last_good = models.FloatField(null=True, blank=True)
    last_total = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "name"],
                name="monitoring_slo_unique_name",
                violation_error_message="This service already has an SLO with this name.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} / {self.name}"


class SliSample(models.Model):
    """Good and total events of one SLO since its previous evaluation; the burn-rate windows sum these."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    good = models.FloatField()
    total = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["slo", "at"], name="monitoring_sample_slo_at")]

    def __str__(self) -> str:
        return f"{self.slo_id} at {self.at:%Y-%m-%d %H:%M}: {self.good}/{self.total}"


class Anomaly(models.Model):
    """The start of an anomalous episode in an SLO's error ratio, or in a key metric scraped from a service in one
    environment (`health_check` and `metric`), found by the streaming detector (monitoring.anomaly).

    `deployment` is the latest deployment of the service or of one of its dependencies that started in the two hours
    before, the likeliest cause a person would look at first.
    """

    slo = models.ForeignKey(SLO, null=True, blank=True, on_delete=models.CASCADE, related_name="anomalies")
    health_check = models.ForeignKey(
        HealthCheck, null=True, blank=True, on_delete=models.CASCADE, related_name="anomalies"
    )
    metric = models.CharField(max_length=20, choices=Metric.choices, blank=True)
    started_at = models.DateTimeField()
    value = models.FloatField(help_text="The error ratio (or the metric's value) at the start.")
    reason = models.CharField(max_length=20)
    low = models.FloatField()
    high = models.FloatField()
    deployment = models.ForeignKey(
        "deployments.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="anomalies"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["slo", "started_at"], name="monitoring_anomaly_once"),
            models.UniqueConstraint(
                fields=["health_check", "metric", "started_at"], name="monitoring_metric_anomaly_once"
            ),
            models.CheckConstraint(
                condition=models.Q(slo__isnull=False, health_check__isnull=True)
                | models.Q(slo__isnull=True, health_check__isnull=False),
                name="monitoring_anomaly_of_one_series",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.started_at:%Y-%m-%d %H:%M}: {self.reason}"

    @property
    def subject(self) -> str:
        """What deviated, for people: the SLO's name, or the metric and its environment."""
        if self.slo is not None:
            return self.slo.name
        environment = self.health_check.environment.name if self.health_check is not None else "?"
        return f"{self.get_metric_display().lower()} in {environment}"


class DetectorState(models.Model):
    """What the anomaly detector learnt of one check's key metrics (monitoring.anomaly.ServiceDetector.state), so that
    a scheduled run feeds it only the buckets scraped since `fed_until` instead of replaying the stored week.

    A table rather than Redis: the state is a week of learning that only the raw samples' week can rebuild, so it
    should survive a Redis restart or eviction, and it is read in one query for a batch of checks and written back in
    one statement. A state the detector cannot read (another version or configuration, damaged bytes) is replaced by
    a replay of the week.
    """

    health_check = models.OneToOneField(HealthCheck, on_delete=models.CASCADE, related_name="detector_state")
    # The end of the last 10-minute bucket fed to the detector: the next run starts there.
    fed_until = models.DateTimeField()
    state = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.health_check_id} fed until {self.fed_until:%Y-%m-%d %H:%M}"


class SloDetectorState(models.Model):
    """What the anomaly detector learnt of one SLO's error ratio (monitoring.anomaly.SeriesDetector.state), kept like
    `DetectorState` for the same reasons: a run feeds it only the whole 10-minute buckets since `fed_until`."""

    slo = models.OneToOneField(SLO, on_delete=models.CASCADE, related_name="detector_state")
    fed_until = models.DateTimeField()
    state = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"SLO {self.slo_id} fed until {self.fed_until:%Y-%m-%d %H:%M}"
